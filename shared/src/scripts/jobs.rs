//! `save_job.lua` and `delete_job.lua`: job definitions written atomically with the indexes
//! and the schedule.

use redis::aio::ConnectionLike;

use super::{DELETE_JOB, SAVE_JOB, ScriptArgs, refusal};
use crate::error::Result;
use crate::keys::Keys;

/// Whether a save creates a job or updates one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveMode {
    /// A new job: refused if the id exists.
    Create,
    /// An existing job: refused if it does not exist, or (optimistic concurrency) if its
    /// version is no longer `expected_version`.
    Update {
        /// The version the change was computed from; `None` accepts any.
        expected_version: Option<u64>,
    },
}

/// What a save does to the job's schedule score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextFire {
    /// Remove the job from the schedule (paused, by hand only, or nothing left to fire).
    Unschedule,
    /// Leave the score alone (nothing that decides it changed).
    Keep,
    /// Schedule it at this instant (ms). On an update, runs fired ahead for later instants
    /// are recalled.
    At(i64),
}

/// Creates or updates a job definition.
#[derive(Clone, Debug)]
pub struct SaveJob<'a> {
    /// The job id.
    pub id: &'a str,
    /// Its group.
    pub group: &'a str,
    /// Create or update.
    pub mode: SaveMode,
    /// Its schedule score.
    pub next: NextFire,
    /// The definition's hash fields (the version is bumped by the script).
    pub fields: &'a [(&'a str, String)],
    /// Whether the script writes the global indexes (job index, job id set, group set) too;
    /// `false` on a Redis Cluster, where they live in other slots and the caller writes them.
    pub indexes: bool,
}

/// What [`SaveJob`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveReply {
    /// Saved; the job's new version.
    Saved(u64),
    /// Create: the id exists already.
    Exists,
    /// Update: no such job.
    NotFound,
    /// Update: the job changed since `expected_version`.
    Conflict,
}

impl SaveJob<'_> {
    /// Runs `save_job.lua`.
    pub async fn call<C: ConnectionLike + Send>(
        &self,
        c: &mut C,
        keys: &Keys,
    ) -> Result<SaveReply> {
        let mut inv = SAVE_JOB.prepare_invoke();
        self.encode(&mut inv, keys);
        match inv.invoke_async(c).await {
            Ok(version) => Ok(SaveReply::Saved(version)),
            Err(e) => match refusal(&e).0 {
                Some("EXISTS") => Ok(SaveReply::Exists),
                Some("NOTFOUND") => Ok(SaveReply::NotFound),
                Some("CONFLICT") => Ok(SaveReply::Conflict),
                _ => Err(e.into()),
            },
        }
    }

    fn encode(&self, inv: &mut impl ScriptArgs, keys: &Keys) {
        let (mode, expected) = match self.mode {
            SaveMode::Create => ("create", None),
            SaveMode::Update { expected_version } => ("update", expected_version),
        };
        inv.key(keys.group_prefix(self.group));
        if self.indexes {
            inv.key(keys.job_index())
                .key(keys.job_ids())
                .key(keys.groups());
        }
        inv.arg(self.id)
            .arg(self.group)
            .arg(mode)
            .arg(expected.map(|v| v.to_string()).unwrap_or_default())
            .arg(match self.next {
                NextFire::Unschedule => String::new(),
                NextFire::Keep => "keep".to_owned(),
                NextFire::At(ms) => ms.to_string(),
            });
        for (field, value) in self.fields {
            inv.arg(field).arg(value);
        }
    }
}

/// Deletes a job with its schedule entry, run records and runs still in the stream.
#[derive(Clone, Copy, Debug)]
pub struct DeleteJob<'a> {
    /// The job id.
    pub id: &'a str,
    /// Its group.
    pub group: &'a str,
    /// Whether the script removes the job from the global indexes too (see
    /// [`SaveJob::indexes`]).
    pub indexes: bool,
}

impl DeleteJob<'_> {
    /// Runs `delete_job.lua`; returns whether the job existed.
    pub async fn call<C: ConnectionLike + Send>(&self, c: &mut C, keys: &Keys) -> Result<bool> {
        let mut inv = DELETE_JOB.prepare_invoke();
        inv.key(keys.group_prefix(self.group));
        if self.indexes {
            inv.key(keys.job_index()).key(keys.job_ids());
        }
        let existed: i64 = inv.arg(self.id).invoke_async(c).await?;
        Ok(existed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::Recorder;

    fn encoded(save: &SaveJob<'_>) -> Recorder {
        let mut r = Recorder::default();
        save.encode(&mut r, &Keys::new("dotjob"));
        r
    }

    #[test]
    fn modes_and_schedule_changes_encode_as_the_script_reads_them() {
        let fields = [("name", "n".to_owned()), ("enabled", "true".to_owned())];
        let create = SaveJob {
            id: "01a",
            group: "g",
            mode: SaveMode::Create,
            next: NextFire::At(1_790_000_000_000),
            fields: &fields,
            indexes: true,
        };
        let r = encoded(&create);
        assert_eq!(
            r.keys,
            [
                "dotjob:{g}:",
                "dotjob:jobs",
                "dotjob:job-ids",
                "dotjob:groups"
            ]
        );
        assert_eq!(
            r.args,
            [
                "01a",
                "g",
                "create",
                "",
                "1790000000000",
                "name",
                "n",
                "enabled",
                "true"
            ]
        );
        let update = SaveJob {
            mode: SaveMode::Update {
                expected_version: Some(3),
            },
            next: NextFire::Keep,
            fields: &[],
            ..create.clone()
        };
        assert_eq!(encoded(&update).args, ["01a", "g", "update", "3", "keep"]);
        let pause = SaveJob {
            mode: SaveMode::Update {
                expected_version: None,
            },
            next: NextFire::Unschedule,
            fields: &[],
            ..create
        };
        assert_eq!(encoded(&pause).args, ["01a", "g", "update", "", ""]);
        // On a cluster the script gets its group's slot only.
        let on_cluster = SaveJob {
            indexes: false,
            ..pause
        };
        assert_eq!(encoded(&on_cluster).keys, ["dotjob:{g}:"]);
    }
}
