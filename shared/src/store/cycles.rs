//! Child jobs may not form a cycle: a job whose children lead back to it, at any depth,
//! would fire itself forever. Checked when a job's children are written.

use std::collections::{HashMap, VecDeque};

use super::Store;
use crate::error::{Error, Result};

/// Most jobs a cycle check visits; a graph of children larger than this is refused rather
/// than walked without bound.
const VISIT_MAX: usize = 10_000;

impl Store {
    /// Refuses `children` for job `id` if they lead back to `id` through the stored jobs'
    /// children (any group, any depth); the error names `children` and the path.
    pub(super) async fn check_no_cycle(&self, id: &str, children: &[String]) -> Result<()> {
        let keys = self.redis.keys();
        let mut c = self.redis.conn().await?;
        // Each job reached, with the job whose children led to it (for the path).
        let mut came_from: HashMap<String, String> = HashMap::new();
        let mut level: Vec<String> = Vec::new();
        for child in children {
            if child == id {
                return Err(cycle(&[id.to_owned(), id.to_owned()]));
            }
            if !came_from.contains_key(child) {
                came_from.insert(child.clone(), id.to_owned());
                level.push(child.clone());
            }
        }
        while !level.is_empty() {
            let groups: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(keys.job_index())
                .arg(&level)
                .query_async(&mut c)
                .await?;
            let mut pipe = redis::pipe();
            for (job, group) in level.iter().zip(&groups) {
                pipe.hget(keys.job(group.as_deref().unwrap_or(""), job), "children");
            }
            let lists: Vec<Option<String>> = pipe.query_async(&mut c).await?;
            let mut next = Vec::new();
            for (job, list) in level.iter().zip(lists) {
                let grandchildren: Vec<String> = list
                    .and_then(|l| serde_json::from_str(&l).ok())
                    .unwrap_or_default();
                for g in grandchildren {
                    if g == id {
                        return Err(cycle(&path_to(&came_from, job, id)));
                    }
                    if !came_from.contains_key(&g) {
                        came_from.insert(g.clone(), job.clone());
                        next.push(g);
                    }
                }
            }
            if came_from.len() > VISIT_MAX {
                return Err(Error::invalid(
                    "children",
                    format!("the child jobs reach more than {VISIT_MAX} jobs"),
                ));
            }
            level = next;
        }
        Ok(())
    }
}

/// The path `id → … → last → id`, from the predecessors recorded.
fn path_to(came_from: &HashMap<String, String>, last: &str, id: &str) -> Vec<String> {
    let mut back = VecDeque::from([last.to_owned(), id.to_owned()]);
    let mut at = last;
    while let Some(prev) = came_from.get(at) {
        back.push_front(prev.clone());
        if prev == id {
            break;
        }
        at = prev;
    }
    back.into()
}

fn cycle(path: &[String]) -> Error {
    Error::invalid(
        "children",
        format!(
            "child jobs may not form a cycle: {} fires itself again",
            path.join(" → ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_is_named_by_its_path() {
        let came_from: HashMap<String, String> = [("b", "a"), ("c", "b")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(path_to(&came_from, "c", "a"), ["a", "b", "c", "a"]);
        let Error::Invalid { field, message } = cycle(&path_to(&came_from, "c", "a")) else {
            panic!("not a refusal")
        };
        assert_eq!(field, "children");
        assert!(message.contains("a → b → c → a"), "{message}");
    }
}
