//! The browser client's files, compiled into the binary so that the server
//! runs from any folder and a deployment is one file.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "room.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../static/room.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../static/app.css"),
    },
];

/// A version tag for cache validation: the build's package version plus the
/// file's length is enough to change whenever a release changes a file.
fn etag(asset: &Asset) -> String {
    format!("\"{}-{}\"", env!("CARGO_PKG_VERSION"), asset.body.len())
}

pub async fn serve(req: HttpRequest, file: web::Path<String>) -> HttpResponse {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file.as_str()) else {
        return HttpResponse::NotFound().body("Not found");
    };
    let tag = etag(asset);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == tag.as_bytes());
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, tag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type(asset.content_type);
    if fresh {
        res.finish()
    } else {
        res.body(asset.body)
    }
}
