//! Machines: add, remove, label. Validation lives here, not in the CLI: names, labels
//! and hostnames are checked the same way whoever asks.

use super::{Fleet, FleetError, Kind};
use crate::boot::Machine;
use crate::inventory::pin;
use crate::store::StoreError;

/// One label edit: set `key` to a value, or remove it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LabelChange {
    Set { key: String, value: String },
    Remove { key: String },
}

impl LabelChange {
    /// Parses `KEY=VALUE` (set) or `KEY-` (remove), checking key and value.
    pub(crate) fn parse(s: &str) -> Result<LabelChange, FleetError> {
        let change = if let Some((k, v)) = s.split_once('=') {
            LabelChange::Set {
                key: k.to_string(),
                value: v.to_string(),
            }
        } else if let Some(k) = s.strip_suffix('-') {
            LabelChange::Remove { key: k.to_string() }
        } else {
            return Err(FleetError::invalid(
                "label",
                s,
                format!("label change {s:?} is neither KEY=VALUE nor KEY-"),
            ));
        };
        change.check()?;
        Ok(change)
    }

    fn check(&self) -> Result<(), FleetError> {
        let (key, value) = match self {
            LabelChange::Set { key, value } => (key, Some(value)),
            LabelChange::Remove { key } => (key, None),
        };
        pin::check_label("key", key).map_err(|e| FleetError::invalid("label", key, e))?;
        if let Some(v) = value {
            pin::check_label("value", v).map_err(|e| FleetError::invalid("label", v, e))?;
        }
        Ok(())
    }
}

impl Fleet {
    /// Adds a machine after checking its name, labels and hostname.
    pub(crate) async fn add_machine(&self, m: &Machine) -> Result<(), FleetError> {
        self.add_machine_by(m, None).await
    }

    /// [`Fleet::add_machine`] on behalf of `actor` (an API token's name, kept in the
    /// machine's history).
    pub(crate) async fn add_machine_by(
        &self,
        m: &Machine,
        actor: Option<&str>,
    ) -> Result<(), FleetError> {
        pin::check_machine_name(&m.name).map_err(|e| FleetError::invalid("name", &m.name, e))?;
        if m.macs.is_empty() && m.uuid.is_none() {
            return Err(FleetError::invalid(
                "macs",
                "",
                format!(
                    "machine {:?} needs at least one --mac or a --uuid to be recognised",
                    m.name
                ),
            ));
        }
        for (k, v) in &m.labels {
            pin::check_label("key", k).map_err(|e| FleetError::invalid("label", k, e))?;
            pin::check_label("value", v).map_err(|e| FleetError::invalid("label", v, e))?;
        }
        if let Some(h) = &m.hostname {
            crate::images::cmdline::check_value("hostname", h)
                .map_err(|e| FleetError::invalid("hostname", h, e))?;
        }
        match self.store().add_machine_by(m, actor).await {
            Err(StoreError::Conflict(message)) => Err(FleetError::Conflict {
                kind: Kind::Machine,
                name: m.name.clone(),
                message,
            }),
            r => Ok(r?),
        }
    }

    /// Removes a machine (its pin, if any, stays: it names the machine, not its MACs).
    pub(crate) async fn remove_machine(&self, name: &str) -> Result<(), FleetError> {
        self.remove_machine_by(name, None).await
    }

    /// [`Fleet::remove_machine`] on behalf of `actor`.
    pub(crate) async fn remove_machine_by(
        &self,
        name: &str,
        actor: Option<&str>,
    ) -> Result<(), FleetError> {
        if self.store().remove_machine_by(name, actor).await? {
            Ok(())
        } else {
            Err(no_machine(name))
        }
    }

    /// Applies label edits to a machine, all in one transaction.
    pub(crate) async fn label_machine(
        &self,
        name: &str,
        changes: &[LabelChange],
    ) -> Result<(), FleetError> {
        for c in changes {
            c.check()?;
        }
        let rows: Vec<(String, Option<String>)> = changes
            .iter()
            .map(|c| match c {
                LabelChange::Set { key, value } => (key.clone(), Some(value.clone())),
                LabelChange::Remove { key } => (key.clone(), None),
            })
            .collect();
        if self.store().label_machine_by(name, &rows, None).await? {
            Ok(())
        } else {
            Err(no_machine(name))
        }
    }

    /// Every change of machine `name`, oldest first, with its actor (also after its
    /// removal); a name that never had one is not found.
    pub(crate) async fn machine_history(
        &self,
        name: &str,
    ) -> Result<Vec<crate::store::MachineChange>, FleetError> {
        let h = self.store().machine_history(name).await?;
        if h.is_empty() {
            return Err(no_machine(name));
        }
        Ok(h)
    }

    /// A machine by name.
    pub(crate) async fn machine(&self, name: &str) -> Result<Machine, FleetError> {
        self.store()
            .machine(name)
            .await?
            .ok_or_else(|| no_machine(name))
    }
}

pub(super) fn no_machine(name: &str) -> FleetError {
    FleetError::NotFound {
        kind: Kind::Machine,
        name: name.to_string(),
        message: format!("no machine named {name:?}"),
    }
}
