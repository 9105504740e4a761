//! MLflow's proxied artifact API (`/api/2.0/mlflow-artifacts/artifacts/...`) over the
//! content-addressed blob store. Registered versions appear read-only under
//! `_cairn/versions/<model>/<version>/`, served from their manifests, so what a client
//! downloads for `models:/NAME/N` is exactly the verified, immutable version.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cairn_core::tracking::ArtifactEntry;
use cairn_core::{FileEntry, ModelName, Sha256Digest, VersionRef};
use cairn_registry::tracking::directory_children;
use cairn_registry::{FileList, Registry};
use futures::TryStreamExt;
use serde_json::{Value, json};

use super::error::{MlflowError, MlflowResult};
use super::registry::VERSION_ARTIFACTS;
use super::request::Fields;
use super::schema;

/// A path under the registered-versions prefix: the version and the rest.
fn version_path(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix(VERSION_ARTIFACTS)?.strip_prefix('/')?;
    let (model, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let (number, rest) = rest.split_once('/').unwrap_or((rest, ""));
    Some((model, number, rest.trim_end_matches('/')))
}

async fn version_files(r: &Registry, model: &str, number: &str) -> MlflowResult<Vec<FileEntry>> {
    let model = ModelName::new(model)?;
    let number: u64 = number
        .parse()
        .map_err(|_| MlflowError::not_found(format!("no such version: {model}@{number}")))?;
    let v = r
        .get_version(&model, &VersionRef::Number(number), FileList::Included)
        .await?;
    Ok(v.files.unwrap_or_default())
}

pub(super) fn listing(entries: Vec<ArtifactEntry>, parent: Option<&str>) -> Value {
    if entries.is_empty() {
        return json!({});
    }
    let files: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let path = match parent {
                Some(p) if !p.is_empty() => format!("{p}/{}", e.name),
                _ => e.name,
            };
            let mut item = json!({"path": path, "is_dir": e.is_dir});
            if let Some(size) = e.size {
                item["file_size"] = json!(size);
            }
            item
        })
        .collect();
    json!({ "files": files })
}

pub async fn list(State(r): State<Registry>, f: Fields) -> MlflowResult<Json<Value>> {
    let dir = f.opt_str("path")?.unwrap_or_default();
    let dir = dir.trim_matches('/');
    if dir.split('/').any(|s| s == "..") {
        return Err(MlflowError::invalid("Invalid path"));
    }
    if let Some((model, number, rest)) = version_path(dir) {
        let files = version_files(&r, model, number).await?;
        let entries = directory_children(files.into_iter().map(|f| (f.path, f.size)), rest);
        return Ok(Json(listing(entries, None)));
    }
    let entries = r.tracking().list_artifacts(dir).await?;
    Ok(Json(listing(entries, None)))
}

/// Extensions (and extension-less names) MLflow serves as `text/plain`.
const TEXT_EXTENSIONS: [&str; 26] = [
    "txt",
    "log",
    "err",
    "cfg",
    "conf",
    "cnf",
    "cf",
    "ini",
    "properties",
    "prop",
    "hocon",
    "toml",
    "yaml",
    "yml",
    "xml",
    "json",
    "js",
    "py",
    "py3",
    "csv",
    "tsv",
    "md",
    "rst",
    "ipynb",
    "MLmodel",
    "mlproject",
];

/// The type a file is served as, guessed from its name as `mlflow server` does: its
/// text formats as `text/plain`, others by extension, unknown ones as bytes. The
/// response is an attachment with `nosniff`, so no type renders in the server's origin.
fn content_type(name: &str) -> String {
    let extension = match name.rsplit_once('.') {
        Some((_, ext)) => ext,
        None => name,
    };
    if TEXT_EXTENSIONS.contains(&extension) {
        return "text/plain".to_owned();
    }
    mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// `Content-Disposition: attachment` naming `name`: as a token or quoted string when it
/// is ASCII; otherwise an ASCII fallback and the UTF-8 name percent-encoded (RFC 6266,
/// RFC 5987), as `mlflow server` sends it.
fn attachment(name: &str) -> String {
    fn header_value(value: &str) -> String {
        let token = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        match token {
            true => value.to_owned(),
            false => format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")),
        }
    }
    if name.is_ascii() && !name.bytes().any(|b| b.is_ascii_control()) {
        return format!("attachment; filename={}", header_value(name));
    }
    const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let fallback: String = name
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    let fallback = if fallback.is_empty() {
        "download".to_owned()
    } else {
        fallback
    };
    let encoded = percent_encoding::utf8_percent_encode(name, ATTR_CHAR);
    format!(
        "attachment; filename={}; filename*=UTF-8''{encoded}",
        header_value(&fallback)
    )
}

pub(super) async fn serve_blob(
    r: &Registry,
    digest: &Sha256Digest,
    path: &str,
) -> MlflowResult<Response> {
    let blob = r.tracking().read_blob(digest).await?;
    let name = path.rsplit('/').next().unwrap_or(path);
    let headers = [
        (header::CONTENT_TYPE, content_type(name)),
        (header::CONTENT_LENGTH, blob.size.to_string()),
        (header::CONTENT_DISPOSITION, attachment(name)),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    Ok((
        headers,
        Body::from_stream(blob.stream.map_err(axum::Error::new)),
    )
        .into_response())
}

pub async fn download(
    State(r): State<Registry>,
    Path(path): Path<String>,
) -> MlflowResult<Response> {
    let path = path.trim_end_matches('/');
    if let Some((model, number, rest)) = version_path(path) {
        let files = version_files(&r, model, number).await?;
        let file = files
            .iter()
            .find(|f| f.path == rest)
            .ok_or_else(|| MlflowError::not_found(format!("File {path} does not exist")))?;
        return serve_blob(&r, &file.sha256, path).await;
    }
    match r.tracking().artifact_blob(path).await? {
        Some((digest, _)) => serve_blob(&r, &digest, path).await,
        None if !r.tracking().list_artifacts(path).await?.is_empty() => {
            Err(MlflowError::invalid(format!("{path} is a directory")))
        }
        None => Err(MlflowError::not_found(format!(
            "File {path} does not exist"
        ))),
    }
}

pub async fn upload(
    State(r): State<Registry>,
    Path(path): Path<String>,
    body: Body,
) -> MlflowResult<Json<Value>> {
    if version_path(&path).is_some() {
        return Err(MlflowError::invalid("registered versions are read-only"));
    }
    r.tracking()
        .put_artifact(&path, body.into_data_stream())
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete(
    State(r): State<Registry>,
    Path(path): Path<String>,
) -> MlflowResult<Json<Value>> {
    if version_path(&path).is_some() {
        return Err(MlflowError::invalid("registered versions are read-only"));
    }
    r.tracking().delete_artifacts(&path).await?;
    Ok(Json(json!({})))
}

/// `artifacts/list` of the tracking API: paths relative to the run's artifact root.
pub async fn list_run_artifacts(State(r): State<Registry>, f: Fields) -> MlflowResult<Json<Value>> {
    f.check(schema::LIST_ARTIFACTS)?;
    let run_id = match f.opt_str("run_id")?.filter(|s| !s.is_empty()) {
        Some(id) => id,
        None => f.str("run_uuid")?,
    };
    let run = r.tracking().run_info(&run_id).await?;
    let root = cairn_core::source::artifact_path(&run.artifact_uri).unwrap_or_default();
    let sub = f.opt_str("path")?.unwrap_or_default();
    let sub = sub.trim_matches('/');
    let dir = if sub.is_empty() {
        root.clone()
    } else {
        format!("{root}/{sub}")
    };
    let entries = r.tracking().list_artifacts(&dir).await?;
    let mut out = listing(entries, Some(sub));
    out["root_uri"] = json!(run.artifact_uri);
    Ok(Json(out))
}

/// The UI's artifact viewer: `get-artifact?run_uuid=…&path=…`.
pub async fn get_run_artifact(State(r): State<Registry>, f: Fields) -> MlflowResult<Response> {
    let run_id = match f.opt_str("run_id")?.filter(|s| !s.is_empty()) {
        Some(id) => id,
        None => f.str("run_uuid")?,
    };
    let run = r.tracking().run_info(&run_id).await?;
    let root = cairn_core::source::artifact_path(&run.artifact_uri).unwrap_or_default();
    let path = format!("{root}/{}", f.str("path")?.trim_matches('/'));
    download(State(r), Path(path)).await
}

/// The UI's file viewer for registered versions.
pub async fn get_version_artifact(State(r): State<Registry>, f: Fields) -> MlflowResult<Response> {
    let path = format!(
        "{VERSION_ARTIFACTS}/{}/{}/{}",
        f.str("name")?,
        f.str("version")?,
        f.str("path")?.trim_matches('/')
    );
    download(State(r), Path(path)).await
}

/// `mpu/create/{path}`: starts a multipart upload; each part goes to a URL of this server.
pub async fn create_multipart(
    State(r): State<Registry>,
    Path(path): Path<String>,
    headers: axum::http::HeaderMap,
    f: Fields,
) -> MlflowResult<Json<Value>> {
    if version_path(&path).is_some() {
        return Err(MlflowError::invalid("registered versions are read-only"));
    }
    let parts = f.i64("num_parts")?;
    if !(1..=10_000).contains(&parts) {
        return Err(MlflowError::invalid(format!(
            "num_parts must be 1-10000, got {parts}"
        )));
    }
    // The URL names the directory; `path` is the client's local file, whose name the
    // artifact takes.
    let local = f.str("path")?;
    let file_name = local.rsplit(['/', '\\']).next().unwrap_or(&local);
    if file_name.is_empty() {
        return Err(MlflowError::invalid(format!(
            "Artifact path must include a filename (cannot end with '/'): {local}"
        )));
    }
    let id = r
        .tracking()
        .create_upload(&format!("{}/{file_name}", path.trim_end_matches('/')))
        .await?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| MlflowError::invalid("multipart uploads need a Host header"))?;
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    let credentials: Vec<Value> = (1..=parts)
        .map(|n| {
            json!({
                "url": format!("{scheme}://{host}/api/2.0/mlflow-artifacts/mpu/part/{id}/{n}"),
                "part_number": n,
                "headers": {}
            })
        })
        .collect();
    Ok(Json(json!({"upload_id": id, "credentials": credentials})))
}

/// A part of a multipart upload; answers its digest as the ETag.
pub async fn upload_part(
    State(r): State<Registry>,
    Path((id, part)): Path<(String, String)>,
    body: Body,
) -> MlflowResult<Response> {
    let part: i64 = part
        .parse()
        .map_err(|_| MlflowError::invalid(format!("Invalid part number: {part}")))?;
    let digest = r
        .tracking()
        .put_upload_part(&id, part, body.into_data_stream())
        .await?;
    Ok(([(header::ETAG, format!("\"{digest}\""))], Json(json!({}))).into_response())
}

pub async fn complete_multipart(State(r): State<Registry>, f: Fields) -> MlflowResult<Json<Value>> {
    let id = f.str("upload_id")?;
    let parts = f
        .list("parts")
        .iter()
        .map(|p| {
            let n = p
                .get("part_number")
                .and_then(|n| n.as_i64().or_else(|| n.as_str()?.parse().ok()))
                .ok_or_else(|| MlflowError::invalid("every part needs a part_number"))?;
            let etag = p
                .get("etag")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            Ok((n, etag))
        })
        .collect::<MlflowResult<Vec<_>>>()?;
    r.tracking().complete_upload(&id, &parts).await?;
    Ok(Json(json!({})))
}

pub async fn abort_multipart(State(r): State<Registry>, f: Fields) -> MlflowResult<Json<Value>> {
    r.tracking().abort_upload(&f.str("upload_id")?).await?;
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_typed_as_mlflow_types_them() {
        for (name, expected) in [
            ("report.pdf", "application/pdf"),
            ("MLmodel", "text/plain"),
            ("MLproject", "application/octet-stream"),
            ("mlproject", "text/plain"),
            ("conda.yaml", "text/plain"),
            ("metrics.json", "text/plain"),
            ("plot.png", "image/png"),
            ("page.html", "text/html"),
            ("model.pkl", "application/octet-stream"),
            ("weights", "application/octet-stream"),
        ] {
            assert_eq!(content_type(name), expected, "{name}");
        }
    }

    #[test]
    fn attachments_name_any_file_in_ascii_headers() {
        assert_eq!(attachment("model.pkl"), "attachment; filename=model.pkl");
        assert_eq!(
            attachment("my \"best\" model.pkl"),
            "attachment; filename=\"my \\\"best\\\" model.pkl\""
        );
        assert_eq!(
            attachment("modèle.bin"),
            "attachment; filename=modle.bin; filename*=UTF-8''mod%C3%A8le.bin"
        );
        assert_eq!(
            attachment("日本"),
            "attachment; filename=download; filename*=UTF-8''%E6%97%A5%E6%9C%AC"
        );
        for name in ["a\r\nSet-Cookie: x", "日本\n"] {
            let value = attachment(name);
            assert!(value.is_ascii() && !value.contains(['\r', '\n']), "{value}");
        }
    }
}
