//! Staff's view of the outbox: the failed-task list, one message, a
//! re-queue of a failed message, and the counts. Answered by the server
//! from the outbox column family (no engine state involved).

use super::compose;
use super::rows::{self, Entry, MessageId, State};
use vouch_engine::ErrorCode;
use vouch_protocol::outbox::{
    OutboxMessageView, OutboxRequest, OutboxStats, OutboxView, OUTBOX_PAGE_MAX,
};
use vouch_protocol::WireError;
use vouch_storage::OutboxStore;

/// Answers one staff request at time `now_ms` (unix ms).
///
/// Errors: `bad_request` for a malformed id or limit, `not_found` for an
/// unknown message, `message_not_failed` to re-queue a message that is not
/// in the failed-task list, `unavailable` when the outbox cannot be read or
/// written.
pub fn answer(
    store: &OutboxStore,
    now_ms: i64,
    request: OutboxRequest,
) -> Result<OutboxView, WireError> {
    match request {
        OutboxRequest::Failed { after, limit } => failed(store, after.as_deref(), limit),
        OutboxRequest::Show { id } => {
            let id = parse(&id)?;
            Ok(OutboxView::Message(view(id, &read(store, id)?)))
        }
        OutboxRequest::Retry { id } => retry(store, parse(&id)?, now_ms),
        OutboxRequest::Stats => stats(store),
    }
}

fn storage_error(e: vouch_storage::StorageError) -> WireError {
    WireError::new(ErrorCode::Unavailable, format!("outbox: {e}"))
}

fn parse(id: &str) -> Result<MessageId, WireError> {
    id.parse()
        .map_err(|e: String| WireError::new(ErrorCode::BadRequest, e))
}

fn read(store: &OutboxStore, id: MessageId) -> Result<Entry, WireError> {
    let raw = store
        .get(&rows::message_key(id))
        .map_err(storage_error)?
        .ok_or_else(|| WireError::new(ErrorCode::NotFound, format!("no outbox message {id}")))?;
    Entry::decode(&raw).map_err(|e| WireError::new(ErrorCode::Unavailable, e))
}

/// A message as staff see it.
pub fn view(id: MessageId, e: &Entry) -> OutboxMessageView {
    let (state, state_ms) = match e.state {
        State::Queued { due_ms } => ("queued", due_ms),
        State::Delivered { at_ms } => ("delivered", at_ms),
        State::Failed { at_ms } => ("failed", at_ms),
        State::Withdrawn { at_ms } => ("withdrawn", at_ms),
    };
    OutboxMessageView {
        id: id.to_string(),
        kind: e.kind.name().into(),
        event: compose::event(&e.effect).into(),
        order_id: e.effect.recipient().order_id.to_string(),
        created_ms: e.created_ms,
        attempts: e.attempts,
        state: state.into(),
        state_ms,
        last_error: e.last_error.clone(),
    }
}

fn failed(store: &OutboxStore, after: Option<&str>, limit: u32) -> Result<OutboxView, WireError> {
    if limit == 0 || limit > OUTBOX_PAGE_MAX {
        let msg = format!("a page holds 1 to {OUTBOX_PAGE_MAX} messages, not {limit}");
        return Err(WireError::new(ErrorCode::BadRequest, msg));
    }
    let from = match after.map(parse).transpose()? {
        // The first key after `after`: its key with one more byte.
        Some(id) => [rows::failed_key(id), vec![0]].concat(),
        None => rows::FAILED_PREFIX.to_vec(),
    };
    let keys = store
        .scan(rows::FAILED_PREFIX, &from, limit as usize + 1)
        .map_err(storage_error)?;
    let mut items = Vec::new();
    for (k, _) in keys.iter().take(limit as usize) {
        let Some(id) = MessageId::from_bytes(&k[1..]) else {
            continue;
        };
        items.push(view(id, &read(store, id)?));
    }
    let next = (keys.len() > limit as usize)
        .then(|| items.last().map(|m| m.id.clone()))
        .flatten();
    Ok(OutboxView::Failed { items, next })
}

/// One re-queue at a time: two staff retries of one message must not both
/// read it failed.
static RETRY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn retry(store: &OutboxStore, id: MessageId, now_ms: i64) -> Result<OutboxView, WireError> {
    let _one = RETRY.lock().unwrap_or_else(|p| p.into_inner());
    let old = read(store, id)?;
    if !matches!(old.state, State::Failed { .. }) {
        let msg = format!(
            "message {id} is {}, not in the failed-task list",
            view(id, &old).state
        );
        return Err(WireError::new(ErrorCode::MessageNotFailed, msg));
    }
    let new = Entry {
        state: State::Queued { due_ms: now_ms },
        round_start: old.attempts,
        ..old.clone()
    };
    // Staff's action is acknowledged: synced.
    store
        .write(&rows::transition(id, &old, &new), true)
        .map_err(storage_error)?;
    Ok(OutboxView::Requeued(view(id, &new)))
}

/// Rows read per scan step of the counts.
const STATS_SCAN_ROWS: usize = 4_096;

fn stats(store: &OutboxStore) -> Result<OutboxView, WireError> {
    let mut s = OutboxStats::default();
    let mut from = b"m".to_vec();
    loop {
        let page = store
            .scan(b"m", &from, STATS_SCAN_ROWS)
            .map_err(storage_error)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        from = [last.clone(), vec![0]].concat();
        for (_, v) in &page {
            let e = Entry::decode(v).map_err(|e| WireError::new(ErrorCode::Unavailable, e))?;
            s.queued_total += 1;
            s.attempts += u64::from(e.attempts);
            s.retried += u64::from(e.attempts > 1);
            match e.state {
                State::Queued { .. } => s.queued += 1,
                State::Delivered { .. } => s.delivered += 1,
                State::Failed { .. } => s.failed += 1,
                State::Withdrawn { .. } => s.withdrawn += 1,
            }
        }
    }
    Ok(OutboxView::Stats(s))
}
