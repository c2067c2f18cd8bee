//! The operations that change a ring: stage, promote, retire, the
//! scheduled `auto` step, and the lint `check`.

use super::*;

impl RingFile {
    /// Adds a freshly generated staged key; returns its id.
    pub fn stage(&mut self, now: OffsetDateTime, secret_len: usize) -> KeyId {
        let secret = generate_secret(secret_len);
        let id = secret.id();
        self.entries.push(RingEntry {
            role: Role::Staged,
            source: SecretSource::Inline,
            secret,
            created: Some(now),
            staged_at: Some(now),
            promoted_at: None,
            retire_after: None,
        });
        id
    }

    /// Promotes a staged key (the only one, or `key`); the old primary becomes
    /// a fallback retiring at `now + grace`. Refuses a key staged less than
    /// `min_staged` ago unless `force`.
    ///
    /// # Errors
    /// [`RingFileError::Refused`] with the reason.
    pub fn promote(
        &mut self,
        key: Option<KeyId>,
        grace: Duration,
        min_staged: Duration,
        force: bool,
        now: OffsetDateTime,
    ) -> Result<(KeyId, KeyId), RingFileError> {
        let staged: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries.get(i).is_some_and(|e| e.role == Role::Staged))
            .collect();
        let at = match key {
            Some(id) => {
                let i = self
                    .position(id)
                    .ok_or_else(|| RingFileError::Refused(format!("no key {id} in the ring")))?;
                let role = self.entries.get(i).map(|e| e.role);
                if role != Some(Role::Staged) {
                    return Err(RingFileError::Refused(format!(
                        "key {id} is {}, not staged; stage a key first",
                        role.map_or("missing", Role::as_str)
                    )));
                }
                i
            }
            None => match staged.as_slice() {
                [i] => *i,
                [] => {
                    return Err(RingFileError::Refused(
                        "no staged key to promote; run `keyroll ring stage` first".into(),
                    ))
                }
                _ => {
                    return Err(RingFileError::Refused(
                        "several keys are staged; name the KEY_ID to promote".into(),
                    ))
                }
            },
        };
        let entry = self
            .entries
            .get(at)
            .ok_or_else(|| RingFileError::Refused("no such key".into()))?;
        let new_id = entry.id();
        if !force {
            let since = entry.staged_at.or(entry.created);
            let ready = since.is_some_and(|t| now - t >= min_staged);
            if !ready && !min_staged.is_zero() {
                return Err(RingFileError::Refused(format!(
                    "key {new_id} was staged less than {} ago; every server must know it before it signs (use --force to promote anyway)",
                    format_duration(min_staged)
                )));
            }
        }
        let grace = time::Duration::try_from(grace).unwrap_or(time::Duration::MAX);
        let mut old_id = new_id;
        for e in &mut self.entries {
            if e.role == Role::Primary {
                e.role = Role::Fallback;
                e.retire_after = Some(now.checked_add(grace).unwrap_or(now));
                old_id = e.id();
            }
        }
        if let Some(e) = self.entries.get_mut(at) {
            e.role = Role::Primary;
            e.promoted_at = Some(now);
            e.retire_after = None;
        }
        // Keep the file in ring order: the new primary first.
        let e = self.entries.remove(at);
        self.entries.insert(0, e);
        Ok((new_id, old_id))
    }

    /// Drops a fallback key now.
    ///
    /// # Errors
    /// [`RingFileError::Refused`] for an unknown key or one that is not a fallback.
    pub fn retire(&mut self, id: KeyId) -> Result<(), RingFileError> {
        let i = self
            .position(id)
            .ok_or_else(|| RingFileError::Refused(format!("no key {id} in the ring")))?;
        match self.entries.get(i).map(|e| e.role) {
            Some(Role::Fallback) => {
                self.entries.remove(i);
                Ok(())
            }
            Some(role) => Err(RingFileError::Refused(format!(
                "key {id} is {role}; only fallback keys can be retired (promote another key first)"
            ))),
            None => Err(RingFileError::Refused(format!("no key {id} in the ring"))),
        }
    }

    /// One idempotent step of scheduled rotation: drop fallbacks past their
    /// `retire_after`; promote a staged key staged at least `min_staged` ago;
    /// otherwise stage a key when the primary is older than `every` and none is staged.
    pub fn auto(
        &mut self,
        every: Duration,
        min_staged: Duration,
        grace: Duration,
        now: OffsetDateTime,
        secret_len: usize,
    ) -> Vec<AutoAction> {
        let mut done = Vec::new();
        let expired: Vec<KeyId> = self
            .entries
            .iter()
            .filter(|e| e.role == Role::Fallback && e.retire_after.is_some_and(|t| now > t))
            .map(RingEntry::id)
            .collect();
        for id in expired {
            if self.retire(id).is_ok() {
                done.push(AutoAction::Retired(id));
            }
        }
        let ready: Option<KeyId> = self
            .entries
            .iter()
            .filter(|e| e.role == Role::Staged)
            .find(|e| {
                e.staged_at
                    .or(e.created)
                    .is_none_or(|t| now - t >= min_staged)
            })
            .map(RingEntry::id);
        if let Some(id) = ready {
            if let Ok((key, old)) = self.promote(Some(id), grace, min_staged, true, now) {
                done.push(AutoAction::Promoted { key, old });
            }
            return done;
        }
        let any_staged = self.entries.iter().any(|e| e.role == Role::Staged);
        let primary_since = self
            .entries
            .iter()
            .find(|e| e.role == Role::Primary)
            .and_then(|e| e.promoted_at.or(e.created));
        let due = primary_since.is_none_or(|t| now - t >= every);
        if !any_staged && due {
            done.push(AutoAction::Staged(self.stage(now, secret_len)));
        }
        done
    }

    /// Lints the ring at `now`: exactly one primary, fallbacks past
    /// `retire_after` still listed, short secrets, a secret repeated (in
    /// one role or across roles). The file's owner, mode and directory are
    /// checked by [`RingFile::open_checked`].
    pub fn check(&self, now: OffsetDateTime) -> Vec<Finding> {
        let mut out = Vec::new();
        let primaries = self
            .entries
            .iter()
            .filter(|e| e.role == Role::Primary)
            .count();
        if primaries != 1 {
            out.push(Finding {
                error: true,
                message: format!("the ring needs exactly one primary key, found {primaries}"),
            });
        }
        for (i, e) in self.entries.iter().enumerate() {
            let id = e.id();
            if e.role == Role::Fallback && e.retire_after.is_some_and(|t| now > t) {
                out.push(Finding {
                    error: true,
                    message: format!("fallback {id} is past its retire_after and still listed; run `keyroll ring retire` or `ring auto`"),
                });
            }
            if e.secret.is_short() {
                out.push(Finding {
                    error: true,
                    message: format!(
                        "key {id} ({}) is only {} bytes; use at least {} (keyroll keygen makes 50)",
                        e.role,
                        e.secret.len(),
                        crate::secret::SHORT_SECRET_BYTES
                    ),
                });
            }
            if let Some(first) = self
                .entries
                .iter()
                .take(i)
                .find(|o| o.secret.expose() == e.secret.expose())
            {
                let kept = if crate::ring::rank(first.role) <= crate::ring::rank(e.role) {
                    first.role
                } else {
                    e.role
                };
                out.push(Finding {
                    error: true,
                    message: format!(
                        "key {id} appears more than once (the same secret as {} and as {}); it verifies only as {kept}: remove the repeated entry",
                        first.role, e.role
                    ),
                });
            }
            if e.role == Role::Fallback && e.retire_after.is_none() {
                out.push(Finding {
                    error: false,
                    message: format!("fallback {id} has no retire_after; it will verify forever"),
                });
            }
        }
        out
    }
}
