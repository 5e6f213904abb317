//! The `/_fake/` routes, so that a fake running as its own process (`filegate fake-meta`) can
//! be driven by tests: faults in, recordings out.

use http::{Method, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use crate::body::BodyReader;
use crate::faults::Fault;
use crate::graph::Resp;
use crate::graph_error::GraphError;
use crate::state::Shared;
use crate::util::json_response;

/// `POST /_fake/faults` takes one fault or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Fault),
    Many(Vec<Fault>),
}

pub(crate) async fn handle(shared: &Shared, method: &Method, path: &str, body: Incoming) -> Resp {
    let mut reader = BodyReader::new(body);
    let body = reader.read_all(1024 * 1024).await;
    match (method, path.trim_end_matches('/')) {
        (&Method::GET, "state") => json_response(StatusCode::OK, &json!(shared.state())),
        (&Method::GET, "faults") => pending(shared),
        (&Method::DELETE, "faults") => {
            shared.faults().clear();
            pending(shared)
        }
        (&Method::POST, "faults") => {
            let parsed = match body {
                Ok(Some(bytes)) => serde_json::from_slice::<OneOrMany>(&bytes)
                    .map_err(|e| format!("not a fault or a list of faults: {e}")),
                _ => Err("the body could not be read".to_owned()),
            };
            match parsed {
                Ok(OneOrMany::One(fault)) => {
                    shared.faults().push(fault);
                    pending(shared)
                }
                Ok(OneOrMany::Many(faults)) => {
                    let mut queue = shared.faults();
                    for fault in faults {
                        queue.push(fault);
                    }
                    drop(queue);
                    pending(shared)
                }
                Err(e) => GraphError::invalid_parameter(e).into_response(),
            }
        }
        (&Method::POST, "reset") => {
            shared.reset();
            json_response(StatusCode::OK, &json!({ "reset": true }))
        }
        _ => {
            let mut e = GraphError::unsupported_request(method, &format!("_fake/{path}"));
            e.status = StatusCode::NOT_FOUND;
            e.into_response()
        }
    }
}

fn pending(shared: &Shared) -> Resp {
    json_response(
        StatusCode::OK,
        &json!({ "pending": shared.faults().pending() }),
    )
}
