//! Conformance cases (`conformance:`): single requests, or Observe subscriptions with pushed updates and
//! RPC round trips, each with expectations. They check a server's device API (ThingsBoard's, as
//! `scenarios/thingsboard-api.yaml` does) rather than load it.

use super::checks::{self, RawExpect, ResponseExpect};
use super::locate::Step;
use super::validate::Invalid;
use crate::coap::{Code, MessageType};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCase {
    pub name: String,
    #[serde(
        default = "super::raw::default_method",
        deserialize_with = "super::raw::method"
    )]
    pub method: Code,
    /// `{token}` stands for the device token (or `token` below).
    #[serde(default = "telemetry")]
    pub path: String,
    /// Use this token instead of the device's (e.g. one the server does not know).
    pub token: Option<String>,
    #[serde(default)]
    pub query: Vec<String>,
    /// `con` (default) or `non`.
    #[serde(
        default = "super::raw::default_type",
        rename = "type",
        deserialize_with = "super::raw::mtype"
    )]
    pub mtype: MessageType,
    /// Content-Format of the request (default json when there is a payload).
    #[serde(default, deserialize_with = "super::raw::opt_content_format")]
    pub content_format: Option<u16>,
    /// Sent as is (no templating).
    #[serde(default)]
    pub payload: String,
    /// Register an observation (Observe: 0) and keep it for the case.
    #[serde(default)]
    pub observe: bool,
    /// What the embedded server pushes once the observation is registered.
    #[serde(default)]
    pub push: Vec<RawPush>,
    /// Notifications to wait for (default: one per push).
    pub notifications: Option<u32>,
    /// The device answers each RPC notification with `POST rpc/{id}` and this payload.
    pub rpc_reply: Option<String>,
    /// How long to wait for notifications.
    #[serde(default, deserialize_with = "super::raw::opt_duration")]
    pub wait: Option<Duration>,
    /// The response to the request.
    #[serde(default)]
    pub expect: RawExpect,
    /// Every notification.
    #[serde(default)]
    pub expect_notification: RawExpect,
    /// The response to each RPC reply.
    #[serde(default)]
    pub expect_reply: RawExpect,
}

/// One push: exactly one of its fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPush {
    /// Shared attributes set on the server (sent to attribute observers).
    pub shared_attributes: Option<serde_json::Map<String, serde_json::Value>>,
    /// A server-side RPC command (sent to RPC observers).
    pub rpc: Option<RawRpc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRpc {
    pub method: String,
    #[serde(default)]
    pub params: serde_json::Value,
}

fn telemetry() -> String {
    "/api/v1/{token}/telemetry".into()
}

/// What the embedded server pushes during a case.
#[derive(Clone, Debug, PartialEq)]
pub enum Push {
    SharedAttributes(serde_json::Map<String, serde_json::Value>),
    Rpc {
        method: String,
        params: serde_json::Value,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub name: String,
    pub method: Code,
    pub mtype: MessageType,
    /// Path segments; `None` is the token.
    pub path: Vec<Option<String>>,
    pub token: Option<String>,
    pub query: Vec<String>,
    pub content_format: Option<u16>,
    pub payload: Vec<u8>,
    pub observe: bool,
    pub push: Vec<Push>,
    pub notifications: u32,
    pub rpc_reply: Option<Vec<u8>>,
    pub wait: Duration,
    pub expect: ResponseExpect,
    pub expect_notification: ResponseExpect,
    pub expect_reply: ResponseExpect,
}

/// Validates the cases. Cases with `push:` run only against the embedded server (it is the one we can
/// tell to push); against other targets they are reported as skipped.
pub fn cases(raw: &[RawCase]) -> Result<Vec<Case>, Invalid> {
    let mut out = Vec::with_capacity(raw.len());
    let mut names = std::collections::HashSet::new();
    for (i, r) in raw.iter().enumerate() {
        let at = |k: &str| {
            vec![
                Step::Key("conformance".into()),
                Step::Index(i),
                Step::Key(k.into()),
            ]
        };
        let bad = |k: &str, m: String| Invalid {
            path: at(k),
            message: m,
        };
        if !names.insert(r.name.as_str()) {
            return Err(bad("name", format!("`{}` is used twice", r.name)));
        }
        let (method, mtype) = (r.method, r.mtype);
        if !r.path.starts_with('/') {
            return Err(bad("path", format!("`{}` must start with /", r.path)));
        }
        let path = r
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| (s != "{token}").then(|| s.to_string()))
            .collect();
        if (!r.push.is_empty() || r.notifications.is_some()) && !r.observe {
            return Err(bad(
                "observe",
                "pushes and notifications need `observe: true`".into(),
            ));
        }
        let mut push = Vec::with_capacity(r.push.len());
        for (j, p) in r.push.iter().enumerate() {
            push.push(match (&p.shared_attributes, &p.rpc) {
                (Some(m), None) => Push::SharedAttributes(m.clone()),
                (None, Some(rpc)) => Push::Rpc {
                    method: rpc.method.clone(),
                    params: rpc.params.clone(),
                },
                _ => {
                    let mut path = at("push");
                    path.push(Step::Index(j));
                    return Err(Invalid {
                        path,
                        message: "each push is exactly one of `shared_attributes` or `rpc`".into(),
                    });
                }
            });
        }
        let at_expect = |k: &str| at(k);
        out.push(Case {
            name: r.name.clone(),
            method,
            mtype,
            path,
            token: r.token.clone(),
            query: r.query.clone(),
            content_format: r
                .content_format
                .or((!r.payload.is_empty()).then_some(crate::coap::content_format::JSON)),
            payload: r.payload.as_bytes().to_vec(),
            observe: r.observe,
            notifications: r.notifications.unwrap_or(push.len() as u32),
            push,
            rpc_reply: r.rpc_reply.as_ref().map(|p| p.as_bytes().to_vec()),
            wait: r.wait.unwrap_or(Duration::from_secs(5)),
            expect: checks::expect(&r.expect, &at_expect("expect"))?,
            expect_notification: checks::expect(
                &r.expect_notification,
                &at_expect("expect_notification"),
            )?,
            expect_reply: checks::expect(&r.expect_reply, &at_expect("expect_reply"))?,
        });
    }
    Ok(out)
}
