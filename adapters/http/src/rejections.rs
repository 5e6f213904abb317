//! hyper's own rejections, in the envelope. A request hyper cannot parse (a garbage request
//! line, a duplicated `Content-Length`, headers past its limits) never reaches poem: hyper
//! answers it by itself, `400` or `431` with an empty body, and closes the connection. Every
//! other answer of the service is the envelope, so the connection rewrites those answers on
//! their way out (see [`crate::listener::BoundedIo`]). They are recognized by what only hyper
//! writes: a 4xx head whose first headers are `connection: close` and `content-length: 0`
//! (the service's own 4xx answers always carry an envelope). Only a connection's first write is
//! looked at: a later one may be a download's bytes, which must never be rewritten, whatever
//! they hold (a rejection on a later keep-alive request keeps hyper's empty body).

/// The prefix of an answer hyper writes for a request it refused.
const HYPER_REJECTION: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";

/// The answer to write instead of `head`, when `head` is one of hyper's rejections.
pub(crate) fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    if !(head.starts_with(b"HTTP/1.") && head.get(9) == Some(&b'4') && head.ends_with(b"\r\n\r\n"))
    {
        return None;
    }
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let after_line = &head[line_end..];
    let rest = after_line.strip_prefix(HYPER_REJECTION)?;
    let status_line = std::str::from_utf8(&head[..line_end]).ok()?;
    let code = status_line.get(9..12)?;
    let message = match code {
        "400" => {
            "the request is not valid HTTP/1.1 (a malformed request line or header, or \
             conflicting Content-Length headers); nothing was done"
        }
        "431" => "the request's headers are too many (at most 100) or too large; nothing was done",
        "414" => "the request's URI is too long; nothing was done",
        _ => "the request could not be read as HTTP; nothing was done",
    };
    let body =
        serde_json::json!({ "isSuccess": false, "data": null, "message": message }).to_string();
    let mut out = Vec::with_capacity(head.len() + body.len() + 64);
    out.extend_from_slice(status_line.as_bytes());
    out.extend_from_slice(
        b"\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n",
    );
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    // The rest of hyper's head (its date) and the empty line that ends it.
    out.extend_from_slice(rest);
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_empty_rejections_become_envelopes() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sat, 28 Nov 2026 03:51:20 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(head).unwrap()).unwrap();
        let (head_out, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head_out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head_out.contains("\r\ncontent-type: application/json; charset=utf-8\r\n"));
        assert!(head_out.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        assert!(head_out.ends_with("date: Sat, 28 Nov 2026 03:51:20 GMT"));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["isSuccess"], false);
        assert!(json["data"].is_null());
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .contains("headers are too many")
        );
    }

    #[test]
    fn the_services_own_answers_are_left_alone() {
        for head in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 60\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 0\r\n\r\n",
            // A head and its body in one write is not hyper's rejection either.
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\nx",
            b"HTTP/1.1 4",
        ] {
            assert_eq!(rewrite(head), None, "{}", String::from_utf8_lossy(head));
        }
    }
}
