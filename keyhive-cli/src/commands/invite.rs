//! `keyhive invite`, `keyhive join`, `keyhive invites`, and `keyhive grant --expires`
//! (`specs/invitations.md`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use keyhive_core::capability::{Access, Action, AnyVerified, InvitationInfo, Reason};
use keyhive_core::crypto::hash::Hash;
use keyhive_core::identity::DocumentId;
use keyhive_sync::invite_code::InviteCode;
use keyhive_sync::protocol::PushOutcome;
use keyhive_sync::replica::{RedemptionStatus, ReplicaError};
use keyhive_sync::{AllowAll, Store};
use serde_json::json;

use crate::cli::InviteArgs;
use crate::commands::sync::{all_synced, sync_session};
use crate::names::shown;
use crate::output::print_table;
use crate::relays;
use crate::session::Session;

/// Unix seconds now (the time a redemption claims, INV-5).
pub fn now() -> Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs())
}

/// INV-5, INV-11: the causal end of this device's expired invitations and of the ended grants
/// it may revoke (run before every sync). Returns (invitations, grants) revoked.
pub fn revoke_ended(s: &mut Session) -> Result<(Vec<Hash>, Vec<Hash>)> {
    let now = now()?;
    let invitations = s.replica.revoke_expired_invitations(now)?;
    let grants = s.replica.revoke_ended_grants(now)?;
    Ok((invitations, grants))
}

/// INV-11, INV-12: run before sealing a change for `document`
/// (`Replica::end_before_writing`), with the refusal in words that say what to do.
pub fn end_before_writing(s: &mut Session, document: DocumentId) -> Result<()> {
    let now = now()?;
    let (subject, grant) = match s.replica.end_before_writing(document, now) {
        Ok(()) => return Ok(()),
        Err(ReplicaError::GrantEnded { subject, grant }) => (subject, grant),
        Err(e) => return Err(e.into()),
    };
    let (delegate, ends) = match s.replica.checker().op(&grant) {
        Some(AnyVerified::Auth(op)) => match op.body.action {
            Action::DelegateUntil { delegate, ends, .. } => (Some(delegate), ends),
            _ => (None, now),
        },
        _ => (None, now),
    };
    let who = delegate.map_or_else(|| "its grantee".to_owned(), |d| s.name_of(d.public_key()));
    let on = s.name_of(&subject);
    bail!(
        "not written (INV-12): {who}'s access to {on} ended {} s ago but is not revoked yet, \
         and only an admin of {on} can revoke it; until one does, a change here would reach \
         {who}. Ask an admin to run `keyhive sync`, then sync and write again (grant {})",
        now.saturating_sub(ends),
        &grant.to_string()[..12]
    )
}

/// `30s`, `30m`, `12h`, `7d`, `2w` in seconds.
pub fn parse_duration(text: &str) -> Result<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a duration like 30m, 12h, 7d or 2w"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("{text:?} is not a duration like 30m, 12h, 7d or 2w"),
    };
    if n == 0 {
        bail!("{text:?} would end at once: give a duration of at least 1s");
    }
    n.checked_mul(scale)
        .with_context(|| format!("{text:?} is too long"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `keyhive invite SUBJECT --access LEVEL [--expires 7d] [--uses N] [--relay URL]`.
pub fn invite(mut s: Session, args: &InviteArgs) -> Result<()> {
    if args.uses == 0 {
        bail!("--uses must be at least 1");
    }
    let url = match &args.relay {
        Some(url) => relays::normalize(url)?,
        None => relays::load(&s.home)?.into_iter().next().context(
            "no relay for the invitee to reach: pass --relay URL or run `keyhive relay add URL` first",
        )?,
    };
    let (subject, _) = s.subject(&args.subject)?;
    let expires = match &args.expires {
        Some(d) => Some(now()?.saturating_add(parse_duration(d)?)),
        None => None,
    };
    let (invitation, code) = s
        .replica
        .invite(&subject, args.access, expires, args.uses, &url)?;
    s.save()?;
    let subject_name = shown(&s.name_of(&subject));
    let out = s.out;
    // The relay must hold the invitation before a redemption naming it arrives (INV-9).
    let synced = runtime()?
        .block_on(sync_session(s, std::slice::from_ref(&url)))
        .and_then(|(s, summaries)| all_synced(&summaries).map(|()| (s, summaries)));
    let sync_error = synced.as_ref().err().map(|e| format!("{e:#}"));
    let (text, link) = (code.encode(), code.link());
    out.emit(
        &json!({
            "invitation": invitation.to_string(),
            "subject": subject.to_string(),
            "access": args.access.to_string(),
            "expires": expires,
            "max_uses": args.uses,
            "relay": url,
            "code": text.as_str(),
            "link": link.as_str(),
            "synced": sync_error.is_none(),
            "sync_error": sync_error,
        }),
        || {
            let until = match (expires, &args.expires) {
                (Some(at), Some(d)) => format!("expires in {d} ({})", crate::sync_state::utc(at)),
                _ => "never expires".to_owned(),
            };
            println!(
                "Invitation {} to {subject_name}: {}, {} use(s), {until}",
                short_hash(&invitation),
                args.access,
                args.uses
            );
            println!("Code (it holds the secret: send it privately, on one line):");
            println!("{}", text.as_str());
            println!("Link: {}", link.as_str());
            println!("The invitee runs `keyhive init`, then `keyhive join CODE`.");
            if let Some(e) = &sync_error {
                println!("Warning: the invitation is not on {url} yet: run `keyhive sync` before sending the code; {e}");
            }
        },
    )
}

/// `keyhive join CODE`.
pub fn join(s: Session, code: &str) -> Result<()> {
    let code = InviteCode::parse(code).context("not an invite code")?;
    let url = relays::normalize(&code.relay)?;
    let subject = code.subject;
    let mut s = s;
    // INV-9: pushed before it is stored, so that a redemption the relay refuses (its uses
    // taken there) stays nowhere and cannot displace the device that redeemed first.
    let redeemed_at = now()?;
    let item = s.replica.redemption(&code, redeemed_at)?;
    relays::add(&s.home, &url)?;
    let key = s.keys.device().signing_key().clone();
    let store: Arc<dyn Store> = s.store.clone();
    let home = s.home.clone();
    let out = s.out;
    let rt = runtime()?;
    // Pushed on its own first, so that a refusal by the relay comes back with its rule.
    let outcome = rt.block_on(async {
        let client = relays::client(&home, key, store, Arc::new(AllowAll))?;
        let pinned = relays::pinned(&home, &url)?;
        let session = client.connect_to(&url, pinned).await.with_context(|| {
            format!("cannot reach relay {url} (is it running, and the URL right?)")
        })?;
        if pinned.is_none() {
            relays::pin(&home, &url, session.server_id())?;
        }
        let outcomes = session.push(std::slice::from_ref(&item)).await?;
        anyhow::Ok(outcomes.into_iter().next())
    })?;
    if let Some(PushOutcome::Refused(why)) = &outcome {
        if why.contains("predecessor") {
            bail!(
                "the relay does not hold the invitation yet: ask the inviter to run `keyhive sync`"
            );
        }
        bail!("the relay refused the invitation: {why}");
    }
    let redemption = s.replica.redeem(&code, redeemed_at)?;
    s.save()?;
    let (s, summaries) = rt.block_on(sync_session(s, std::slice::from_ref(&url)))?;
    all_synced(&summaries)?;
    let status = s.replica.redemption_status(&redemption);
    match status {
        RedemptionStatus::Admitted(level) => out.emit(
            &json!({
                "redemption": redemption.to_string(),
                "subject": subject.to_string(),
                "access": level.to_string(),
                "relay": url,
            }),
            || {
                println!("Joined {subject} with {level} access (redemption {}).", short_hash(&redemption));
                println!("You can read once a member has synced after this (they seat you in the key agreement): run `keyhive sync` later.");
            },
        ),
        RedemptionStatus::Refused(refusal) => {
            let revoked = matches!(
                refusal.reason,
                Reason::Excluded { delegation, .. } if delegation == code.invitation
            );
            if revoked {
                bail!("the invitation was revoked: {refusal}");
            }
            bail!("the invitation was refused: {refusal}")
        }
        _ => bail!(
            "the relay took the redemption but has not granted access yet: run `keyhive sync` later"
        ),
    }
}

/// `keyhive grant SUBJECT AGENT --access LEVEL --expires DURATION` (INV-11): a grant that the
/// first sync after its end revokes (here or on any device that may revoke it).
pub fn grant_until(
    s: &mut Session,
    subject: &str,
    agent: &str,
    access: Access,
    duration: &str,
) -> Result<()> {
    let (subject_key, _) = s.subject(subject)?;
    let who = s.agent(agent)?;
    let ends = now()?.saturating_add(parse_duration(duration)?);
    let op = s.replica.grant_until(&subject_key, who, access, ends)?;
    s.save()?;
    let (sn, an) = (
        shown(&s.name_of(&subject_key)),
        shown(&s.name_of(who.public_key())),
    );
    s.out.emit(
        &json!({"op": op.to_string(), "subject": subject_key.to_string(), "agent": who.public_key().to_string(), "access": access.to_string(), "ends": ends}),
        || println!("Granted {access} on {sn} to {an} for {duration} (op {op}); the first sync after that revokes it"),
    )
}

/// `keyhive invites [--revoke ID]`.
pub fn list(mut s: Session, revoke: Option<&str>) -> Result<()> {
    let now = now()?;
    // INV-5: the causal end of this device's expired invitations.
    let (expired, _) = revoke_ended(&mut s)?;
    let revoked = match revoke {
        Some(id) => {
            let target = find(&s.replica.invitations(), id)?;
            Some(s.replica.revoke_invitation(&target)?)
        }
        None => None,
    };
    s.save()?;
    let invitations = s.replica.invitations();
    let rows: Vec<(InvitationInfo, String, String)> = invitations
        .into_iter()
        .map(|i| {
            let status = status_of(&i, now);
            let name = shown(&s.name_of(&i.subject));
            (i, status, name)
        })
        .collect();
    s.out.emit(
        &json!({
            "revoked_expired": expired.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "revoked": revoked.map(|h| h.to_string()),
            "invitations": rows.iter().map(|(i, status, _)| json!({
                "id": i.hash.to_string(),
                "subject": i.subject.to_string(),
                "issuer": i.issuer.to_string(),
                "access": i.access.to_string(),
                "expires": i.expires,
                "max_uses": i.max_uses,
                "redeemed_by": i.redeemed_by.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "status": status,
            })).collect::<Vec<_>>(),
        }),
        || {
            if let Some(r) = &revoked {
                println!(
                    "Revoked the invitation (op {}); whoever joined with it lost that access",
                    short_hash(r)
                );
            }
            if !expired.is_empty() {
                println!(
                    "Revoked {} expired invitation(s) of this device",
                    expired.len()
                );
            }
            print_table(
                &["id", "subject", "access", "uses", "expires", "status"],
                rows.iter()
                    .map(|(i, status, name)| {
                        vec![
                            short_hash(&i.hash),
                            name.clone(),
                            i.access.to_string(),
                            format!("{}/{}", i.redeemed_by.len(), i.max_uses),
                            i.expires.map_or("never".into(), crate::sync_state::utc),
                            status.clone(),
                        ]
                    })
                    .collect(),
            );
        },
    )
}

/// What an invitation is worth now, as `keyhive invites` says it.
fn status_of(i: &InvitationInfo, now: u64) -> String {
    if i.revoked {
        "revoked".into()
    } else if !i.validity.is_valid() {
        "invalid".into()
    } else if !i.issuer_holds {
        "issuer removed".into()
    } else if i.expires.is_some_and(|e| now > e) {
        "expired".into()
    } else if i.redeemed_by.len() as u64 >= u64::from(i.max_uses) {
        "used up".into()
    } else {
        "outstanding".into()
    }
}

/// An invitation by full id or unique prefix (4 or more hex characters).
fn find(invitations: &[InvitationInfo], id: &str) -> Result<Hash> {
    let id = id.to_ascii_lowercase();
    if id.len() < 4 {
        bail!("type at least 4 characters of the invitation id (see `keyhive invites`)");
    }
    let found: Vec<Hash> = invitations
        .iter()
        .map(|i| i.hash)
        .filter(|h| h.to_string().starts_with(&id))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no invitation {id} here: run `keyhive invites` to see them"),
        many => bail!(
            "the id prefix {id:?} is ambiguous ({} matches); type more of it",
            many.len()
        ),
    }
}

fn short_hash(hash: &Hash) -> String {
    hash.to_string()[..12].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert_eq!(parse_duration("2w").unwrap(), 1_209_600);
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("99999999999999999999w").is_err());
    }
}
