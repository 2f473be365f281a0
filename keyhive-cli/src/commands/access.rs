//! `grant`, `revoke`, `members`, `why`.

use anyhow::{Result, bail};
use keyhive_core::Hash;
use keyhive_core::capability::{Access, Action, AgentId, AnyVerified, Explanation, Reason};
use keyhive_core::crypto::signing::PublicKey;
use serde_json::json;

use crate::names::shown;
use crate::output::print_table;
use crate::session::Session;
use keyhive_sync::record::MetadataKind;

fn agent_key(agent: &AgentId) -> keyhive_core::crypto::signing::PublicKey {
    *agent.public_key()
}

/// Grants `access` on `subject` to `agent`.
pub fn grant(s: &mut Session, subject: &str, agent: &str, access: Access) -> Result<()> {
    let (subject_key, _) = s.subject(subject)?;
    let who = s.agent(agent)?;
    if *who.public_key() == subject_key {
        bail!(
            "cannot grant {} to itself: name a contact, `me`, or another group or folder",
            shown(subject)
        );
    }
    // The same grant again would be one more op granting nothing (and one more to revoke).
    let standing = standing_grant(s, &subject_key, who, access);
    let op = match standing {
        Some(op) => op,
        None => {
            let op = s.replica.grant(&subject_key, who, access)?;
            s.save()?;
            op
        }
    };
    let (sn, an) = (
        shown(&s.name_of(&subject_key)),
        shown(&s.name_of(&agent_key(&who))),
    );
    s.out.emit(
        &json!({"op": op.to_string(), "subject": subject_key.to_string(), "agent": who.public_key().to_string(), "access": access.to_string(), "unchanged": standing.is_some()}),
        || match standing {
            Some(_) => println!(
                "{an} already holds {access} on {sn} by this device's grant (op {op}); nothing written"
            ),
            None => println!("Granted {access} on {sn} to {an} (op {op})"),
        },
    )
}

/// A grant of exactly `access` on `subject` to `agent`, without an end, that this device
/// issued and that grants now.
fn standing_grant(
    s: &Session,
    subject: &PublicKey,
    agent: AgentId,
    access: Access,
) -> Option<Hash> {
    let me = s.replica.device().id().0;
    let checker = s.replica.checker();
    checker
        .delegations_to(subject, agent)
        .into_iter()
        .find(|hash| match checker.op(hash) {
            Some(AnyVerified::Auth(op)) => {
                op.payload().issuer == me
                    && matches!(op.payload().body.action, Action::Delegate { access: a, .. } if a == access)
            }
            _ => false,
        })
}

/// Revokes every delegation of `agent` on `subject`.
pub fn revoke(s: &mut Session, subject: &str, agent: &str) -> Result<()> {
    let (subject_key, _) = s.subject(subject)?;
    let who = s.agent(agent)?;
    let before = s.replica.checker().members(&subject_key);
    let ops = match s.replica.revoke(&subject_key, who) {
        Err(keyhive_sync::replica::ReplicaError::Build(
            keyhive_core::capability::BuildError::NothingToRevoke,
        )) => bail!(
            "{} holds no grant on {} to revoke (`keyhive why {} {}` says where its access comes from)",
            shown(agent),
            shown(subject),
            shown(subject),
            shown(agent)
        ),
        other => other?,
    };
    s.save()?;
    // CAP-13: the revocation cascades; say everyone who lost access, not only the agent named.
    let after = s.replica.checker().members(&subject_key);
    let lost: Vec<(String, AgentId)> = before
        .keys()
        .filter(|a| !after.contains_key(a))
        .map(|a| (shown(&s.name_of(a.public_key())), *a))
        .collect();
    let (sn, an) = (
        shown(&s.name_of(&subject_key)),
        shown(&s.name_of(&agent_key(&who))),
    );
    let lost_json: Vec<_> = lost
        .iter()
        .map(|(name, a)| json!({"name": name, "id": a.public_key().to_string()}))
        .collect();
    s.out.emit(
        &json!({"ops": ops.iter().map(|h| h.to_string()).collect::<Vec<_>>(), "subject": subject_key.to_string(), "agent": who.public_key().to_string(), "lost_access": lost_json}),
        || {
            println!("Revoked {an} on {sn} ({} op(s)); the next write re-keys the documents", ops.len());
            if !lost.is_empty() {
                let names: Vec<&str> = lost.iter().map(|(n, _)| n.as_str()).collect();
                println!("Lost access to {sn}: {}", names.join(", "));
            }
        },
    )
}

/// Lists a subject's members, direct and transitive, with effective levels.
pub fn members(s: &mut Session, subject: &str) -> Result<()> {
    let (subject_key, _) = s.subject(subject)?;
    let members = s.replica.checker().members(&subject_key);
    let direct = s.replica.checker().direct_members(&subject_key);
    let mut rows = Vec::new();
    for (agent, level) in members.iter() {
        let via = if direct.contains_key(agent) {
            "direct".to_owned()
        } else {
            match s.replica.explain(*agent, *level, &subject_key) {
                Explanation::Granted { path, .. } => path
                    .iter()
                    .skip(1)
                    .map(|l| l.subject)
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|k| shown(&s.name_of(k)))
                    .collect::<Vec<_>>()
                    .join(" > "),
                Explanation::Refused(r) => format!("refused: {r}"),
            }
        };
        let kind = match agent {
            AgentId::Individual(_) => "device",
            AgentId::Group(_) => "group",
            // A document holding access to another is nearly always its folder (REP-8); only
            // its metadata tells the two apart, as in `ls`.
            AgentId::Document(d) => match s.metas()?.get(d).map(|m| m.kind) {
                Some(MetadataKind::Folder) => "folder",
                Some(MetadataKind::Document) => "document",
                None => "unknown",
            },
        };
        rows.push((
            shown(&s.name_of(agent.public_key())),
            agent.public_key().to_string(),
            *level,
            via,
            kind,
        ));
    }
    // Highest level first, then by name (and id): the same order on every run.
    rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
    let json_rows: Vec<_> = rows
        .iter()
        .map(|(n, id, l, via, k)| json!({"name": n, "id": id, "access": l.to_string(), "via": via, "kind": k}))
        .collect();
    s.out.emit(&json_rows, || {
        print_table(
            &["name", "kind", "id", "access", "via"],
            rows.iter()
                .map(|(n, id, l, via, k)| {
                    vec![
                        n.clone(),
                        (*k).to_owned(),
                        id.clone(),
                        l.to_string(),
                        via.clone(),
                    ]
                })
                .collect(),
        )
    })
}

/// Explains why `agent` holds (or not) `access` on `subject`.
pub fn why(s: &mut Session, agent: &str, subject: &str, access: Access) -> Result<()> {
    let (subject_key, _) = s.subject(subject)?;
    let who = s.agent(agent)?;
    match s.replica.explain(who, access, &subject_key) {
        Explanation::Granted { level, path } => {
            let steps: Vec<_> = path
                .iter()
                .map(|l| {
                    (
                        shown(&s.name_of(&l.subject)),
                        shown(&s.name_of(l.member.public_key())),
                        l.access,
                        l.op,
                    )
                })
                .collect();
            s.out.emit(
                &json!({"granted": true, "level": level.to_string(), "path": steps.iter().map(|(sub, m, a, op)| json!({"subject": sub, "member": m, "access": a.to_string(), "op": op.to_string()})).collect::<Vec<_>>()}),
                || {
                    println!("yes: {} holds {level} on {}", s_name(&steps, 1), s_name(&steps, 0));
                    for (sub, m, a, op) in &steps {
                        println!("  {sub} grants {a} to {m}   (op {})", &op.to_string()[..12]);
                    }
                },
            )
        }
        Explanation::Refused(refusal) => {
            let text = refusal.to_string();
            let revoked = match refusal.reason {
                Reason::Revoked {
                    revocation,
                    delegation,
                } => revoked_grant(s, &delegation, &revocation),
                _ => None,
            };
            s.out.emit(&json!({"granted": false, "rule": refusal.rule, "reason": refusal.reason.to_string(), "revoked": revoked}), || {
                println!("no: {text}");
                if let Some(revoked) = &revoked {
                    println!("  {revoked}");
                }
            })
        }
    }
}

/// A revoked grant on an agent's path, as a person reads it: who granted what to whom on which
/// subject, and who revoked it.
fn revoked_grant(s: &mut Session, delegation: &Hash, revocation: &Hash) -> Option<String> {
    let (granter, subject, delegate, access) = match s.replica.checker().op(delegation)? {
        AnyVerified::Auth(op) => match &op.payload().body.action {
            Action::Delegate {
                delegate, access, ..
            }
            | Action::DelegateUntil {
                delegate, access, ..
            } => (
                op.payload().issuer,
                op.payload().body.subject,
                *delegate,
                *access,
            ),
            _ => return None,
        },
        _ => return None,
    };
    let revoker = match s.replica.checker().op(revocation)? {
        AnyVerified::Auth(op) => op.payload().issuer,
        _ => return None,
    };
    let [granter, subject, delegate, revoker] =
        [granter, subject, *delegate.public_key(), revoker].map(|k| shown(&s.name_of(&k)));
    Some(format!(
        "{granter} granted {access} on {subject} to {delegate} (op {}); {revoker} revoked it (op {})",
        &delegation.to_string()[..12],
        &revocation.to_string()[..12]
    ))
}

fn s_name(steps: &[(String, String, Access, keyhive_core::Hash)], which: usize) -> String {
    match which {
        0 => steps.first().map(|s| s.0.clone()).unwrap_or_default(),
        _ => steps.last().map(|s| s.1.clone()).unwrap_or_default(),
    }
}
