//! Webhooks through the facade: add, list, remove, and a webhook's delivery log. What
//! `tabula webhook …` (and the API's `/webhooks` routes, later) call.

use super::{Fleet, FleetError, Kind};
use crate::notify::sign;
use crate::store::{DeliveryRow, WebhookRow};

impl Fleet {
    /// Registers `url` for the event `patterns`; a secret is made when none is given.
    /// Returns the webhook with its secret (shown once by the CLI).
    pub(crate) async fn add_webhook(
        &self,
        url: &str,
        patterns: &str,
        secret: Option<&str>,
    ) -> Result<WebhookRow, FleetError> {
        if !url.starts_with("http://") || url.len() <= "http://".len() {
            return Err(FleetError::invalid(
                "url",
                url,
                "a webhook URL is http://HOST[:PORT]/PATH (https needs a TLS client tabula does not have yet)",
            ));
        }
        if patterns.split(',').all(|p| p.trim().is_empty()) {
            return Err(FleetError::invalid(
                "events",
                patterns,
                "name at least one event type or pattern",
            ));
        }
        let secret = match secret {
            Some(s) => {
                sign::key(s).map_err(|e| FleetError::invalid("secret", "whsec_…", e))?;
                s.to_string()
            }
            None => {
                let a = crate::http::report_key::boot_id().0;
                let b = crate::http::report_key::boot_id().0;
                let c = crate::http::report_key::boot_id().0;
                sign::secret_of(&[a, b, c].concat())
            }
        };
        let w = WebhookRow {
            id: format!("wh_{}", hex::encode(crate::http::report_key::boot_id().0)),
            url: url.to_string(),
            events: patterns.to_string(),
            secret,
            created_ms: crate::store::now_ms(),
        };
        self.store().insert_webhook(&w).await?;
        Ok(w)
    }

    /// Every webhook.
    pub(crate) async fn webhooks(&self) -> Result<Vec<WebhookRow>, FleetError> {
        Ok(self.store().webhooks().await?)
    }

    /// Removes a webhook.
    pub(crate) async fn remove_webhook(&self, id: &str) -> Result<(), FleetError> {
        if self.store().remove_webhook(id).await? {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }

    /// A webhook's deliveries, newest first.
    pub(crate) async fn deliveries(
        &self,
        id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, FleetError> {
        if !self.store().webhooks().await?.iter().any(|w| w.id == id) {
            return Err(not_found(id));
        }
        Ok(self.store().deliveries(id, limit).await?)
    }
}

fn not_found(id: &str) -> FleetError {
    FleetError::NotFound {
        kind: Kind::Webhook,
        name: id.to_string(),
        message: format!("no webhook {id:?} (see `tabula webhook list`)"),
    }
}
