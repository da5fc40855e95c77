//! What a publishable key with a customer token may send (DESIGN §6): events of the token's
//! subject whose type the project lists in `client_event_types`.

use std::sync::Arc;

use meterline_core::{error::ValidationError, event::Event};

use crate::schemas::ClientAccess;

/// What a publishable key's events may be: its token's subject, the listed types.
#[derive(Debug, Clone)]
pub struct ClientPermit {
    /// The customer token's subject.
    pub subject: String,
    /// The project's `client_event_types`.
    pub access: Arc<ClientAccess>,
}

impl ClientPermit {
    /// `forbidden` at `/subject` or `/type` when `event` is not one the key may send.
    pub(super) fn check(&self, event: &Event) -> Result<(), ValidationError> {
        let forbidden = |path: &str, message: String| ValidationError {
            code: "forbidden",
            path: path.to_owned(),
            message,
        };
        if event.subject != self.subject {
            return Err(forbidden(
                "/subject",
                format!(
                    "the customer token is for subject {:?}; a publishable key may not send events of subject {:?}",
                    self.subject, event.subject
                ),
            ));
        }
        if !self.access.event_types.contains(&event.event_type) {
            return Err(forbidden(
                "/type",
                format!(
                    "event type {:?} is not in the project's client_event_types, so a publishable key may not \
                     send it (an admin lists it with PUT /v1/admin/settings)",
                    event.event_type
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use meterline_core::schema::{SchemaDocument, SchemaRegistry};
    use serde_json::json;

    use super::*;
    use crate::{
        config::IngestConfig,
        ingest::{BodyShape, parse_batch_for},
        schemas::ProjectSchemas,
    };

    #[test]
    fn forbidden_comes_before_the_schema_and_names_the_attribute() {
        let mut registry = SchemaRegistry::new(false);
        let strict = json!({"type": "object", "required": ["n"]});
        registry.insert("page.view", &strict).unwrap();
        registry.insert("secret.type", &strict).unwrap();
        let schemas = ProjectSchemas {
            registry,
            document: SchemaDocument::default(),
        };
        let permit = ClientPermit {
            subject: "c1".into(),
            access: Arc::new(ClientAccess {
                event_types: ["page.view".to_owned()].into(),
                allowed_origins: Vec::new(),
                document: SchemaDocument::default(),
            }),
        };
        let event = |id: &str, t: &str, subject: &str, data: serde_json::Value| json!({"specversion": "1.0", "id": id, "source": "web", "type": t, "subject": subject, "data": data});
        let body = serde_json::to_vec(&json!([
            event("ok", "page.view", "c1", json!({"n": 1})),
            event("bad-data", "page.view", "c1", json!({})),
            event("other", "page.view", "c2", json!({"n": 1})),
            event("unlisted", "secret.type", "c1", json!({})),
        ]))
        .unwrap();
        let parsed = parse_batch_for(
            &body,
            BodyShape::Batch,
            &schemas,
            &IngestConfig::default(),
            0,
            Some(&permit),
        )
        .unwrap();
        assert_eq!(parsed.rows.len(), 1);
        let got: Vec<_> = parsed.rejected.iter().map(|r| (r.index, r.code.as_str())).collect();
        assert_eq!(got, [(1, "schema_violation"), (2, "forbidden"), (3, "forbidden")]);
        assert_eq!(parsed.rejected[1].path, "/subject");
        assert_eq!(parsed.rejected[2].path, "/type");
        assert!(
            !parsed.rejected[2].message.contains("required"),
            "no schema detail of an unlisted type"
        );
    }
}
