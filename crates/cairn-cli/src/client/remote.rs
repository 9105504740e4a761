//! Remote mode: the native REST API of a `cairn server`, with streaming blob transfers.

use std::path::Path;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use cairn_core::ModelVersionRef;
use cairn_core::api::{
    ACTOR_HEADER, AliasMoveResponse, Approve, Approved, CreateToken, CreatedToken, ErrorBody,
    IDEMPOTENCY_KEY_HEADER, MissingBlobsRequest, MissingBlobsResponse, MoveAlias, NewVersion,
    PromotionCheck, Reason, SetGrant, SetPassword,
};
use cairn_core::auth::{TokenInfo, UserInfo};
use cairn_core::diff::VersionDiff;
use cairn_core::event::Event;
use cairn_core::lineage::{Lineage, ParentRef};
use cairn_core::model::{BlobUse, GcReport};
use cairn_core::policy::{Policy, PolicyRecord};
use cairn_core::webhook::{
    Delivery, DeliveryState, NewWebhook, TestResult, Webhook, WebhookUpdate,
};
use cairn_core::{
    AliasMove, AliasName, AuditEntry, AuditHead, AuditReport, Denial, Model, ModelName,
    Sha256Digest, VerifyReport, Version, VersionRef,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, RequestBuilder, Response, header};
use serde::de::DeserializeOwned;

use super::retry::{self, Repeat, RetryPolicy};
use super::{Download, LineageQuery, RegistryClient};

const UPLOAD_CHUNK: usize = 256 * 1024;

/// Characters a path segment carries as they are (RFC 3986's unreserved); every other
/// byte of a name is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One path segment (a model name, an alias, a reference), percent-encoded.
fn seg(value: impl std::fmt::Display) -> String {
    utf8_percent_encode(&value.to_string(), SEGMENT).to_string()
}

pub struct Remote {
    base: String,
    http: reqwest::Client,
    actor: String,
    /// Sent as `Authorization: Bearer`; a server enforcing authentication records
    /// changes under the token's user, not `actor`.
    token: Option<String>,
    retry: RetryPolicy,
}

impl Remote {
    pub fn new(
        base: &str,
        actor: String,
        token: Option<String>,
        retry: RetryPolicy,
    ) -> Result<Self> {
        let mut http =
            reqwest::Client::builder().user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")));
        // A server whose certificate a private authority signed.
        if let Some(path) = std::env::var_os("CAIRN_CA_CERT") {
            let pem = std::fs::read(&path)
                .with_context(|| format!("reading CAIRN_CA_CERT {}", path.display()))?;
            let ca = reqwest::Certificate::from_pem(&pem).with_context(|| {
                format!("CAIRN_CA_CERT {} is not a PEM certificate", path.display())
            })?;
            http = http.add_root_certificate(ca);
        }
        let http = http.build()?;
        Ok(Self {
            base: base.to_owned(),
            http,
            actor,
            token,
            retry,
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .header(ACTOR_HEADER, &self.actor);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request, retried as `retry` says when it fails on the way or the registry
    /// is briefly unavailable (`retry`); a non-2xx answer becomes an error carrying the
    /// server's message.
    async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let request = request.build()?;
        let repeat = retry::repeat_of(&request);
        let mut retries = self.retry.start();
        loop {
            let attempt = request
                .try_clone()
                .expect("a request sent by `send` has a body in memory");
            match self.attempt(self.http.execute(attempt).await, repeat).await {
                Attempt::Done(answer) => return answer,
                Attempt::Failed { why, error } => {
                    if !retries.pause(&why).await {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// What one attempt came to: an answer to return, or a failure worth retrying.
    async fn attempt(&self, sent: reqwest::Result<Response>, repeat: Repeat) -> Attempt {
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                let retryable = retry::retry_failure(&e, repeat);
                let error = anyhow::Error::new(e)
                    .context(format!("cannot reach the registry at {}", self.base));
                return match retryable {
                    true => Attempt::Failed {
                        why: format!("{error:#}"),
                        error,
                    },
                    false => Attempt::Done(Err(error)),
                };
            }
        };
        if response.status().is_success() {
            return Attempt::Done(Ok(response));
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ErrorBody>(&text).ok();
        let error = match &body {
            Some(body) => anyhow::anyhow!("{} ({})", body.message, body.code),
            None => anyhow::anyhow!("the registry answered {status}: {}", text.trim()),
        };
        if retry::retry_answer(status, body.as_ref().map(|b| b.code.as_str()), repeat) {
            Attempt::Failed {
                why: format!("the registry answered {}: {error}", status.as_u16()),
                error,
            }
        } else {
            Attempt::Done(Err(error))
        }
    }

    /// Every entry of a paginated listing: the first page of `path` with `query`, then
    /// each page the previous one links as `rel="next"`, until one links none.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>> {
        let mut all = Vec::new();
        let mut request = self.request(Method::GET, path).query(query);
        loop {
            let response = self.send(request).await?;
            let next = next_page(response.headers())?;
            let page: Vec<T> = response
                .json()
                .await
                .context("the registry sent an answer this client does not understand")?;
            all.extend(page);
            match next {
                Some(next) => request = self.request(Method::GET, &next),
                None => return Ok(all),
            }
        }
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let response = self.send(request).await?;
        response
            .json()
            .await
            .context("the registry sent an answer this client does not understand")
    }
}

/// One attempt at a request.
enum Attempt {
    /// The answer, or a failure not worth retrying.
    Done(Result<Response>),
    /// A failure a retry may get past: why (for stderr) and the error to report if
    /// no retry is left.
    Failed { why: String, error: anyhow::Error },
}

/// A fresh idempotency key, sent with one write and each of its retries.
fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The next page a listing links to (`Link: </api/v1/…>; rel="next"`), as a path under
/// `/api/v1`. A link anywhere else is refused: the client follows only its registry.
fn next_page(headers: &reqwest::header::HeaderMap) -> Result<Option<String>> {
    let Some(link) = headers.get(reqwest::header::LINK) else {
        return Ok(None);
    };
    let link = link.to_str().unwrap_or_default();
    let next = link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("rel=\"next\"") || p.trim() == "rel=next");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then_some(target)
    });
    match next {
        None => Ok(None),
        Some(target) => match target.strip_prefix("/api/v1/") {
            Some(rest) if !rest.starts_with('/') && !target.contains("://") => {
                Ok(Some(format!("/{rest}")))
            }
            _ => bail!("the registry linked a next page outside its API: {target:?}"),
        },
    }
}

#[async_trait]
impl RegistryClient for Remote {
    async fn list_models(&self) -> Result<Vec<Model>> {
        self.all_pages("/models", &[]).await
    }

    async fn get_model(&self, model: &ModelName) -> Result<Model> {
        self.json(self.request(Method::GET, &format!("/models/{}", seg(model))))
            .await
    }

    async fn delete_model(&self, model: &ModelName) -> Result<()> {
        self.send(self.request(Method::DELETE, &format!("/models/{}", seg(model))))
            .await?;
        Ok(())
    }

    async fn list_versions(&self, model: &ModelName, limit: Option<usize>) -> Result<Vec<Version>> {
        // Pages of at most a thousand, each after the last version of the one before,
        // until one comes back short (or `limit` is reached).
        const PAGE: usize = 1000;
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        let path = format!("/models/{}/versions", seg(model));
        let mut all: Vec<Version> = Vec::new();
        loop {
            let want = limit.map_or(PAGE, |l| (l - all.len()).min(PAGE));
            let after = all.last().map_or(0, |v| v.version);
            let page: Vec<Version> = self
                .json(
                    self.request(Method::GET, &path)
                        .query(&[("after", after.to_string()), ("limit", want.to_string())]),
                )
                .await?;
            let short = page.len() < want;
            all.extend(page);
            if short || limit.is_some_and(|l| all.len() >= l) {
                return Ok(all);
            }
        }
    }

    async fn get_version(&self, model: &ModelName, reference: &VersionRef) -> Result<Version> {
        self.json(self.request(
            Method::GET,
            &format!("/models/{}/versions/{}", seg(model), seg(reference)),
        ))
        .await
    }

    async fn create_version(&self, model: &ModelName, new: &NewVersion) -> Result<Version> {
        self.json(
            self.request(Method::POST, &format!("/models/{}/versions", seg(model)))
                .header(IDEMPOTENCY_KEY_HEADER, new_key())
                .json(new),
        )
        .await
    }

    async fn delete_version(&self, model: &ModelName, number: u64) -> Result<()> {
        self.send(self.request(
            Method::DELETE,
            &format!("/models/{}/versions/{}", seg(model), number),
        ))
        .await?;
        Ok(())
    }

    async fn move_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        number: u64,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>> {
        let body = MoveAlias {
            version: number,
            reason: reason.map(str::to_owned),
        };
        let answer: AliasMoveResponse = self
            .json(
                self.request(
                    Method::PUT,
                    &format!("/models/{}/aliases/{}", seg(model), seg(alias)),
                )
                .header(IDEMPOTENCY_KEY_HEADER, new_key())
                .json(&body),
            )
            .await?;
        Ok(answer.recorded)
    }

    async fn delete_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>> {
        let query = Reason {
            reason: reason.map(str::to_owned),
        };
        let answer: AliasMoveResponse = self
            .json(
                self.request(
                    Method::DELETE,
                    &format!("/models/{}/aliases/{}", seg(model), seg(alias)),
                )
                .header(IDEMPOTENCY_KEY_HEADER, new_key())
                .query(&query),
            )
            .await?;
        Ok(answer.recorded)
    }

    async fn rollback_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        reason: Option<&str>,
    ) -> Result<Option<AliasMove>> {
        let body = Reason {
            reason: reason.map(str::to_owned),
        };
        let answer: AliasMoveResponse = self
            .json(
                self.request(
                    Method::POST,
                    &format!("/models/{}/aliases/{}/rollback", seg(model), seg(alias)),
                )
                .header(IDEMPOTENCY_KEY_HEADER, new_key())
                .json(&body),
            )
            .await?;
        Ok(answer.recorded)
    }

    async fn alias_history(&self, model: &ModelName, alias: &AliasName) -> Result<Vec<AliasMove>> {
        self.json(self.request(
            Method::GET,
            &format!("/models/{}/aliases/{}/history", seg(model), seg(alias)),
        ))
        .await
    }

    async fn denials(&self, limit: u32) -> Result<Vec<Denial>> {
        self.json(self.request(Method::GET, &format!("/audit/denied?limit={limit}")))
            .await
    }

    async fn protect_alias(
        &self,
        model: &ModelName,
        alias: &AliasName,
        protect: bool,
    ) -> Result<()> {
        let method = if protect { Method::PUT } else { Method::DELETE };
        let path = format!("/models/{}/protected-aliases/{}", seg(model), seg(alias));
        self.send(self.request(method, &path)).await?;
        Ok(())
    }

    async fn set_policy(&self, models: &str, alias: &AliasName, policy: &Policy) -> Result<()> {
        let path = format!("/policies/{}/{}", seg(models), seg(alias));
        self.send(self.request(Method::PUT, &path).json(policy))
            .await?;
        Ok(())
    }

    async fn delete_policy(&self, models: &str, alias: &AliasName) -> Result<()> {
        let path = format!("/policies/{}/{}", seg(models), seg(alias));
        self.send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    async fn policies(&self) -> Result<Vec<PolicyRecord>> {
        self.json(self.request(Method::GET, "/policies")).await
    }

    async fn create_webhook(&self, new: &NewWebhook) -> Result<Webhook> {
        self.json(
            self.request(Method::POST, "/webhooks")
                .header(IDEMPOTENCY_KEY_HEADER, new_key())
                .json(new),
        )
        .await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.json(self.request(Method::GET, "/webhooks")).await
    }

    async fn update_webhook(&self, id: &str, update: &WebhookUpdate) -> Result<Webhook> {
        let path = format!("/webhooks/{}", seg(id));
        self.json(self.request(Method::PATCH, &path).json(update))
            .await
    }

    async fn delete_webhook(&self, id: &str) -> Result<()> {
        let path = format!("/webhooks/{}", seg(id));
        self.send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    async fn test_webhook(&self, id: &str) -> Result<TestResult> {
        let path = format!("/webhooks/{}/test", seg(id));
        self.json(self.request(Method::POST, &path)).await
    }

    async fn webhook_deliveries(
        &self,
        id: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let path = format!("/webhooks/{}/deliveries", seg(id));
        let mut query = vec![("limit", limit.to_string())];
        if let Some(state) = state {
            query.push(("state", state.as_str().to_owned()));
        }
        self.json(self.request(Method::GET, &path).query(&query))
            .await
    }

    async fn redeliver(&self, delivery: &str) -> Result<Delivery> {
        let path = format!("/webhook-deliveries/{}/redeliver", seg(delivery));
        self.json(self.request(Method::POST, &path)).await
    }

    async fn approve(
        &self,
        model: &ModelName,
        number: u64,
        alias: &AliasName,
        reason: Option<&str>,
    ) -> Result<bool> {
        let path = format!("/models/{}/versions/{number}/approvals", seg(model));
        let body = Approve {
            alias: alias.to_string(),
            reason: reason.map(str::to_owned),
        };
        let answer: Approved = self
            .json(self.request(Method::POST, &path).json(&body))
            .await?;
        Ok(answer.recorded)
    }

    async fn promotion_check(
        &self,
        model: &ModelName,
        alias: &AliasName,
        number: u64,
    ) -> Result<Vec<String>> {
        let path = format!("/models/{}/aliases/{}/check", seg(model), seg(alias));
        let answer: PromotionCheck = self
            .json(
                self.request(Method::GET, &path)
                    .query(&[("version", number)]),
            )
            .await?;
        Ok(answer.unmet)
    }

    async fn protected_aliases(&self, model: &ModelName) -> Result<Vec<String>> {
        let path = format!("/models/{}/protected-aliases", seg(model));
        self.json(self.request(Method::GET, &path)).await
    }

    async fn create_token(&self, request: &CreateToken) -> Result<CreatedToken> {
        self.json(self.request(Method::POST, "/tokens").json(request))
            .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.json(self.request(Method::GET, "/tokens")).await
    }

    async fn revoke_token(&self, id: &str) -> Result<TokenInfo> {
        self.json(self.request(Method::DELETE, &format!("/tokens/{}", seg(id))))
            .await
    }

    async fn list_users(&self) -> Result<Vec<UserInfo>> {
        self.json(self.request(Method::GET, "/users")).await
    }

    async fn set_password(&self, user: &str, password: &str) -> Result<()> {
        let path = format!("/users/{}/password", seg(user));
        let body = SetPassword {
            password: password.to_owned(),
        };
        self.send(self.request(Method::PUT, &path).json(&body))
            .await?;
        Ok(())
    }

    async fn set_grant(&self, user: &str, grant: &SetGrant) -> Result<()> {
        let path = format!("/users/{}/grants", seg(user));
        self.send(self.request(Method::PUT, &path).json(grant))
            .await?;
        Ok(())
    }

    async fn revoke_grant(&self, user: &str, grant: &SetGrant) -> Result<()> {
        let path = format!("/users/{}/grants", seg(user));
        self.send(self.request(Method::DELETE, &path).json(grant))
            .await?;
        Ok(())
    }

    async fn verify_version(
        &self,
        model: &ModelName,
        reference: &VersionRef,
    ) -> Result<VerifyReport> {
        self.json(self.request(
            Method::POST,
            &format!("/models/{}/versions/{}/verify", seg(model), seg(reference)),
        ))
        .await
    }

    async fn verify_all(&self) -> Result<VerifyReport> {
        self.json(self.request(Method::POST, "/verify")).await
    }

    async fn audit_log(&self, model: Option<&str>, since: Option<&str>) -> Result<Vec<AuditEntry>> {
        let mut query = Vec::new();
        if let Some(model) = model {
            query.push(("model", model.to_owned()));
        }
        if let Some(since) = since {
            query.push(("since", since.to_owned()));
        }
        self.all_pages("/audit", &query).await
    }

    async fn diff(&self, a: &ModelVersionRef, b: &ModelVersionRef) -> Result<VersionDiff> {
        let query = [("a", a.to_string()), ("b", b.to_string())];
        self.json(self.request(Method::GET, "/diff").query(&query))
            .await
    }

    async fn lineage(&self, model: &ModelName, reference: &VersionRef) -> Result<Lineage> {
        self.json(self.request(
            Method::GET,
            &format!("/models/{}/versions/{}/lineage", seg(model), seg(reference)),
        ))
        .await
    }

    async fn versions_from(&self, query: &LineageQuery) -> Result<Vec<ParentRef>> {
        let pair = match query {
            LineageQuery::Data(d) => ("data", d.clone()),
            LineageQuery::Commit(c) => ("commit", c.clone()),
            LineageQuery::Parent(p) => ("parent", p.to_string()),
        };
        self.json(
            self.request(Method::GET, "/lineage/versions")
                .query(&[pair]),
        )
        .await
    }

    async fn collect_garbage(&self, grace: std::time::Duration, dry_run: bool) -> Result<GcReport> {
        let body = serde_json::json!({ "dry_run": dry_run, "grace_seconds": grace.as_secs() });
        self.json(self.request(Method::POST, "/gc").json(&body))
            .await
    }

    async fn why_blob(&self, digest: &Sha256Digest) -> Result<BlobUse> {
        self.json(self.request(Method::GET, &format!("/blobs/sha256/{digest}/why")))
            .await
    }

    async fn audit_head(&self) -> Result<AuditHead> {
        self.json(self.request(Method::GET, "/audit/head")).await
    }

    async fn events(
        &self,
        after: Option<u64>,
        model: Option<&ModelName>,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<Event>>> {
        let mut query = vec![("follow", follow.to_string())];
        if let Some(after) = after {
            query.push(("since", after.to_string()));
        }
        if let Some(model) = model {
            query.push(("model", model.to_string()));
        }
        let response = self
            .send(self.request(Method::GET, "/events").query(&query))
            .await?;
        Ok(super::sse::events(response.bytes_stream()))
    }

    async fn wait_for_change(
        &self,
        model: &ModelName,
        after: Option<u64>,
        wait: std::time::Duration,
    ) -> Result<u64> {
        let mut request = self.request(Method::GET, &format!("/models/{}/changes", seg(model)));
        if let Some(after) = after {
            // The server answers within `wait`; the request may take a little longer.
            request = request
                .query(&[("after", after), ("wait", wait.as_secs())])
                .timeout(wait + std::time::Duration::from_secs(10));
        }
        let head: AuditHead = self.json(request).await?;
        Ok(head.seq)
    }

    async fn verify_audit(&self, exported: Option<&AuditHead>) -> Result<AuditReport> {
        self.json(
            self.request(Method::POST, "/audit/verify")
                .json(&serde_json::json!({ "head": exported })),
        )
        .await
    }

    async fn missing_blobs(&self, digests: &[Sha256Digest]) -> Result<Vec<Sha256Digest>> {
        let body = MissingBlobsRequest {
            digests: digests.to_vec(),
        };
        let answer: MissingBlobsResponse = self
            .json(self.request(Method::POST, "/blobs/missing").json(&body))
            .await?;
        Ok(answer.missing)
    }

    async fn upload_blob(
        &self,
        digest: &Sha256Digest,
        file: &Path,
        size: u64,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        // A blob is stored by its digest: sending it again changes nothing, so every
        // failure on the way is retried, each time from the file's start. Progress
        // counts each byte once, however often it is sent.
        let mut retries = self.retry.start();
        let mut reported = 0u64;
        loop {
            let f = tokio::fs::File::open(file).await?;
            // The body stream must be 'static: report progress through a channel.
            let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
            let stream = tokio_util::io::ReaderStream::with_capacity(f, UPLOAD_CHUNK).inspect(
                move |chunk| {
                    if let Ok(chunk) = chunk {
                        let _ = sent_tx.send(chunk.len() as u64);
                    }
                },
            );
            let request = self
                .request(Method::PUT, &format!("/blobs/sha256/{digest}"))
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, size)
                .body(reqwest::Body::wrap_stream(stream))
                .build()?;
            let mut sent = 0u64;
            let mut progress = |n: u64| {
                sent += n;
                if sent > reported {
                    on_bytes(sent - reported);
                    reported = sent;
                }
            };
            let upload = self.http.execute(request);
            tokio::pin!(upload);
            let answer = loop {
                tokio::select! {
                    answer = &mut upload => {
                        while let Ok(n) = sent_rx.try_recv() {
                            progress(n);
                        }
                        break answer;
                    }
                    Some(n) = sent_rx.recv() => progress(n),
                }
            };
            match self.attempt(answer, Repeat::Harmless).await {
                Attempt::Done(answer) => return answer.map(drop),
                Attempt::Failed { why, error } => {
                    if !retries.pause(&why).await {
                        return Err(error);
                    }
                }
            }
        }
    }

    async fn download_blob(&self, digest: &Sha256Digest) -> Result<Download> {
        let response = self
            .send(self.request(Method::GET, &format!("/blobs/sha256/{digest}")))
            .await?;
        let stream = response
            .bytes_stream()
            .map_err(std::io::Error::other)
            .boxed();
        Ok(Download { stream })
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, LINK};

    use super::next_page;

    fn link(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(LINK, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_next_page_is_followed_only_within_the_api() {
        assert_eq!(next_page(&HeaderMap::new()).unwrap(), None);
        let next = link("</api/v1/models?after=b&limit=2>; rel=\"next\"");
        assert_eq!(
            next_page(&next).unwrap().as_deref(),
            Some("/models?after=b&limit=2")
        );
        let other = link("</api/v1/models?after=a>; rel=\"prev\"");
        assert_eq!(next_page(&other).unwrap(), None);
        for hostile in [
            "<http://elsewhere/api/v1/models>; rel=\"next\"",
            "</elsewhere>; rel=\"next\"",
            "<//elsewhere/api/v1/models>; rel=\"next\"",
            "</api/v1//elsewhere>; rel=\"next\"",
        ] {
            assert!(next_page(&link(hostile)).is_err(), "{hostile}");
        }
    }
}
