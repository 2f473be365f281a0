//! What a case pins: every verdict, member list and `explain` answer of a checker.

use super::*;

fn verdict(v: &Validity) -> String {
    match v {
        Validity::Valid => "valid".into(),
        Validity::Invalid(r) => {
            let reason = format!("{:?}", r.reason);
            let name: String = reason
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            format!("{}:{name}", r.rule)
        }
    }
}

fn explained(e: &Explanation) -> String {
    match e {
        Explanation::Granted { level, .. } => format!("granted:{level}"),
        Explanation::Refused(r) => format!("refused:{}", verdict(&Validity::Invalid(r.clone()))),
    }
}

/// What a case asks `explain` beyond `pull` on the subjects held: further levels
/// (`explain_levels`, e.g. `["admin"]`, answered as `explain_admin`) and subject keys no op
/// creates (`unknown_subjects`, asked at every level). Both absent in the older cases.
#[derive(Default)]
pub(super) struct Queries {
    pub(super) levels: Vec<Access>,
    pub(super) unknown: Vec<PublicKey>,
}

impl Queries {
    pub(super) fn of_case(case: &Value) -> Queries {
        let strings = |key: &str| -> Vec<String> {
            case[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().expect("string").to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        Queries {
            levels: strings("explain_levels")
                .iter()
                .map(|l| l.parse().expect("level"))
                .collect(),
            unknown: strings("unknown_subjects")
                .iter()
                .map(|k| k.parse().expect("key"))
                .collect(),
        }
    }

    /// The optional fields of a case that asks these queries.
    pub(super) fn to_case_fields(&self) -> Value {
        let mut fields = serde_json::Map::new();
        if !self.levels.is_empty() {
            fields.insert(
                "explain_levels".into(),
                json!(
                    self.levels
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                ),
            );
        }
        if !self.unknown.is_empty() {
            fields.insert(
                "unknown_subjects".into(),
                json!(
                    self.unknown
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                ),
            );
        }
        Value::Object(fields)
    }
}

/// Every answer the vectors pin, for a checker holding a case's ops.
pub(super) fn answers(
    c: &Checker,
    ops: &[Hash],
    devices: &[PublicKey],
    queries: &Queries,
) -> Value {
    let validity: BTreeMap<String, String> = ops
        .iter()
        .map(|h| {
            let v = c.op_validity(h).expect("every op applied");
            (h.to_string(), verdict(&v))
        })
        .collect();
    let mut subjects: Vec<PublicKey> = c.subjects().copied().collect();
    subjects.sort();
    let mut members = BTreeMap::new();
    for s in &subjects {
        let m: BTreeMap<String, String> = c
            .members(s)
            .iter()
            .map(|(a, l)| (a.to_string(), l.to_string()))
            .collect();
        members.insert(s.to_string(), m);
    }
    subjects.extend(queries.unknown.iter().copied());
    let mut out = json!({ "validity": validity, "members": members });
    for level in std::iter::once(Access::Pull).chain(queries.levels.iter().copied()) {
        let mut explain = BTreeMap::new();
        for s in &subjects {
            for d in devices {
                let agent = AgentId::Individual(keyhive_core::identity::IndividualId(*d));
                explain.insert(
                    format!("{s} {agent}"),
                    explained(&c.explain(agent, level, s)),
                );
            }
        }
        out[format!("explain_{level}")] = json!(explain);
    }
    out
}
