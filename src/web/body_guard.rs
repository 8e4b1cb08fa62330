//! The request-body guard, before any handler or extractor: every body is
//! read here, within the size limit and a deadline; compressed bodies are
//! inflated within the limit (`inflate`), and HTML form bodies are read
//! strictly. All are then handed on as plain bodies.
//!
//! The deadline matters because actix-web times only the request head: a
//! client announcing a length and sending a few bytes would otherwise hold
//! its connection, and whatever the handler had started, for as long as it
//! likes.
//!
//! Forms are checked here because `serde_urlencoded` is lenient where we
//! must not be: it replaces invalid UTF-8 with U+FFFD (a message would be
//! stored altered) and, for fields it does not know, lets the last of two
//! copies win. A form whose names or values are not UTF-8, or that sends a
//! field twice, is refused with 400 and reaches no handler.

use std::collections::HashSet;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError};
use futures_util::StreamExt;

use super::error::{ApiError, AppError, PageError};
use super::inflate::{inflate, Refusal};
use super::BODY_LIMIT;

/// The middleware.
pub async fn guard_bodies(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let has_body = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // Several header lines are one list, as if joined with commas: two
    // lines of `gzip` are gzip twice, which `inflate` refuses as stacked.
    let encoding = req
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim())
        .collect::<Vec<_>>()
        .join(", ");
    let encoding = Some(encoding).filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !has_body {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let mut payload = req.take_payload();
    let reading = async {
        match &encoding {
            Some(encoding) => inflate(encoding, &mut payload).await,
            None => read_plain(&mut payload).await,
        }
    };
    let Ok(read) = tokio::time::timeout(BODY_DEADLINE, reading).await else {
        return Ok(refuse(req, AppError::BodyTimeout));
    };
    let refused = match read {
        Ok(body) if form => check_form(&body).map(|()| body).map_err(|message| {
            tracing::debug!(reason = message, "form body refused");
            AppError::BadRequest(message.into())
        }),
        Ok(body) => Ok(body),
        Err(Refusal::TooLarge) => Err(AppError::TooLarge),
        Err(Refusal::Corrupt) => Err(AppError::BadRequest(
            "The request body could not be read".into(),
        )),
        Err(Refusal::Unsupported) => Err(AppError::UnsupportedEncoding),
    };
    match refused {
        Ok(body) => {
            let headers = req.headers_mut();
            headers.remove(header::CONTENT_ENCODING);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            req.set_payload(plain_payload(body));
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(err) => Ok(refuse(req, err)),
    }
}

/// How long a request body may take to arrive, whole: far more than any
/// body within the size limit needs on a slow link.
const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Answers in the form the client speaks, without calling the handler.
fn refuse(req: ServiceRequest, err: AppError) -> ServiceResponse<BoxBody> {
    tracing::info!(status = err.status().as_u16(), "request body refused");
    let response = if super::middleware::speaks_json(req.request()) {
        ApiError(err).error_response()
    } else {
        PageError(err).error_response()
    };
    req.into_response(response)
}

/// Reads a plain body, refusing it past the limit.
async fn read_plain(payload: &mut Payload) -> Result<Vec<u8>, Refusal> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::debug!(error = %e, "request body unreadable");
            Refusal::Corrupt
        })?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(Refusal::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Every name and value decodes to UTF-8, and no name comes twice.
fn check_form(body: &[u8]) -> Result<(), &'static str> {
    let mut names = HashSet::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut parts = pair.splitn(2, |b| *b == b'=');
        let name = decode(parts.next().unwrap_or_default())?;
        decode(parts.next().unwrap_or_default())?;
        if !names.insert(name) {
            return Err("The form sends a field more than once");
        }
    }
    Ok(())
}

/// One percent-encoded form name or value (`+` is a space), as text.
fn decode(part: &[u8]) -> Result<String, &'static str> {
    let spaced: Vec<u8> = part
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| "The form is not valid UTF-8")
}

/// The body, read and checked, as the request's payload: one chunk.
fn plain_payload(body: Vec<u8>) -> Payload {
    let chunk: Result<_, actix_web::error::PayloadError> = Ok(actix_web::web::Bytes::from(body));
    let stream: std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>,
            >,
        >,
    > = Box::pin(futures_util::stream::once(async move { chunk }));
    Payload::from(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_with_a_repeated_field_or_bad_utf8_are_refused() {
        assert!(check_form(b"a=1&b=%C3%A9+x&c=").is_ok());
        assert!(check_form(b"").is_ok());
        assert!(check_form(b"a=1&a=2").is_err());
        assert!(check_form(b"a=1&%61=2").is_err(), "the same name encoded");
        assert!(check_form(b"a=%FF").is_err());
        assert!(check_form(b"a=\xff").is_err());
        assert!(check_form(b"%C3=1").is_err());
    }
}
