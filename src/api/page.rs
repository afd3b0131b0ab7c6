//! Cursor pagination, the same for every list: `?limit=N` (1–1000, default 100) and
//! `?after=CURSOR`, answered with `{"items": […], "next": CURSOR|null}`. The cursor is
//! the sort key of the last item returned (a name, a target, an address, an event id),
//! so a page is "the first `limit` items whose key sorts after the cursor": rows added or
//! removed between requests never make another row appear twice or go missing.

use serde::Serialize;

use super::Problem;

/// The default page size.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// The largest page size.
pub(crate) const MAX_LIMIT: usize = 1000;

/// The paging part of a list's query.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub(crate) struct PageQuery {
    pub limit: Option<usize>,
    pub after: Option<String>,
}

impl PageQuery {
    /// The page size asked for, checked.
    pub(crate) fn limit(&self, path: &str) -> Result<usize, Problem> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(Problem::bad_request(
                path,
                format!("limit={n}: 1 to {MAX_LIMIT}"),
            )),
        }
    }
}

/// One page of a list.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    /// The cursor of the next page (`?after=`), `null` on the last.
    pub next: Option<String>,
}

/// The page of `items` (sorted by `key`, ascending, keys unique) after `after`.
pub(crate) fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    after: Option<&str>,
    limit: usize,
) -> Page<T> {
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|i| after.is_none_or(|a| key(i).as_str() > a))
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next = if more { rest.last().map(&key) } else { None };
    Page { items: rest, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once() {
        let items: Vec<String> = (0..57).map(|i| format!("m{i:03}")).collect();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let p = page(items.clone(), |s| s.clone(), after.as_deref(), 10);
            assert!(p.items.len() <= 10);
            seen.extend(p.items);
            match p.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, items);
        assert!(
            page(items, |s| s.clone(), Some("m056"), 10)
                .items
                .is_empty()
        );
    }
}
