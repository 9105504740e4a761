//! Server-Sent Events as `cairn events --follow` reads them from a server.

use anyhow::{Context, Result};
use cairn_core::event::Event;
use futures::StreamExt;
use futures::stream::BoxStream;

/// The events of a Server-Sent Events body: each event's `data:` lines, joined, read as
/// an [`Event`]. Comments (keep-alives) and other fields are skipped.
pub(super) fn events(
    body: impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
) -> BoxStream<'static, Result<Event>> {
    let state = (Box::pin(body), Vec::<u8>::new(), String::new());
    futures::stream::try_unfold(state, |(mut body, mut buffer, mut data)| async move {
        loop {
            // Complete lines first; then more bytes.
            if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if data.is_empty() {
                        continue;
                    }
                    let event: Event = serde_json::from_str(&data)
                        .context("the registry sent an event this client does not understand")?;
                    data.clear();
                    return Ok(Some((event, (body, buffer, data))));
                }
                if let Some(value) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
                continue;
            }
            match body.next().await {
                Some(chunk) => {
                    buffer.extend_from_slice(&chunk.context("the event stream broke off")?)
                }
                None => return Ok(None),
            }
        }
    })
    .boxed()
}
