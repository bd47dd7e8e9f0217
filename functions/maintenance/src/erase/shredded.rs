//! The erasure steps of a shredded backup (`docs/privacy.md#crypto-shredding`): retiring the
//! keys' data key versions before the find, destroying them after the purge, and matching
//! shredded segments by key id and retired version.

use std::sync::Arc;

use tidemark_core::erasure::{Matchers, ShreddedErasure};
use tidemark_core::layout::RunId;
use tidemark_core::object_store;
use tidemark_core::shredding::{Shredding, key_id_hex, parse_key_id_hex};
use tracing::info;

use super::{Destroyed, ErasureRequest, ErasureResponse, ErasureSteps, Prepared};
use crate::error::{MaintenanceError, Result};
use crate::steps::parse_run_id;

impl ErasureSteps {
    /// Checks the request; in a shredded backup (not a dry run) retires the current version of
    /// each key's data key and says how long to wait before the find.
    pub(super) async fn prepare(
        &self,
        run_id: &str,
        request: &ErasureRequest,
    ) -> Result<ErasureResponse> {
        let run = parse_run_id(run_id)?;
        let matchers = request.matchers()?;
        let Some(shredding) = self.shredding().await? else {
            return Ok(ErasureResponse::Prepared(Prepared {
                shredded: false,
                wait_seconds: 0,
            }));
        };
        check_shredded_matchers(&matchers)?;
        if request.dry_run {
            return Ok(ErasureResponse::Prepared(Prepared {
                shredded: true,
                wait_seconds: 0,
            }));
        }
        let backup_id = &self.config.backup_id;
        let mut retired = ShreddedErasure::default();
        for key_id in shredding.key_ids(backup_id, matchers.keys()).await? {
            // A retried step retires again: every version stored now, a superset of
            // what the first attempt saw (nothing is destroyed before the wait).
            let versions = shredding
                .store()
                .retire_data_keys(backup_id, &key_id)
                .await?;
            retired.retired.insert(key_id_hex(&key_id), Some(versions));
        }
        let key = self.retired_key(&run);
        self.objects.delete(&key).await?;
        object_store::put_json_once(self.objects.as_ref(), &key, &retired).await?;
        info!(keys = retired.retired.len(), "data keys retired");
        Ok(ErasureResponse::Prepared(Prepared {
            shredded: true,
            wait_seconds: shredding.erasure_wait().as_secs(),
        }))
    }

    /// Destroys the versions the prepare step retired (nothing in a plain backup).
    pub(super) async fn destroy(&self, run_id: &str) -> Result<ErasureResponse> {
        let run = parse_run_id(run_id)?;
        let mut destroyed = Destroyed {
            key_ids: 0,
            versions: 0,
        };
        if let (Some(shredding), Some(retired)) =
            (self.shredding().await?, self.retired(&run).await?)
        {
            for (key_id, versions) in retired.retired {
                let (Some(key_id), Some(versions)) = (parse_key_id_hex(&key_id), versions) else {
                    continue;
                };
                shredding
                    .store()
                    .destroy_data_keys(&self.config.backup_id, &key_id, &versions)
                    .await?;
                destroyed.key_ids += 1;
                destroyed.versions += versions.len();
            }
        }
        info!(
            key_ids = destroyed.key_ids,
            versions = destroyed.versions,
            "data keys destroyed"
        );
        Ok(ErasureResponse::Destroyed(destroyed))
    }

    /// The shredding keys, when the backup is shredded (it has a root).
    pub(super) async fn shredding(&self) -> Result<Option<&Arc<Shredding>>> {
        match self.keys.shredding() {
            Some(shredding) if shredding.is_shredded(&self.config.backup_id).await? => {
                Ok(Some(shredding))
            }
            _ => Ok(None),
        }
    }

    /// The request's matchers, and in a shredded backup what its shredded segments are matched
    /// by: the keys' ids (for key filters too) and the versions the prepare step retired.
    pub(super) async fn matching(
        &self,
        run: &RunId,
        request: &ErasureRequest,
    ) -> Result<(Matchers, Option<ShreddedErasure>)> {
        let matchers = request.matchers()?;
        let Some(shredding) = self.shredding().await? else {
            return Ok((matchers, None));
        };
        check_shredded_matchers(&matchers)?;
        let key_ids = shredding
            .key_ids(&self.config.backup_id, matchers.keys())
            .await?;
        let shredded = match self.retired(run).await? {
            Some(retired) => retired,
            // A dry run retires nothing: every version matches.
            None => ShreddedErasure {
                retired: key_ids
                    .iter()
                    .map(|key_id| (key_id_hex(key_id), None))
                    .collect(),
            },
        };
        let matchers = matchers.with_keys(key_ids.iter().map(|key_id| key_id.to_vec()));
        Ok((matchers, Some(shredded)))
    }

    fn retired_key(&self, run: &RunId) -> String {
        format!("{}retired.json", self.prefix(run))
    }

    /// The versions the prepare step retired, once it has.
    async fn retired(&self, run: &RunId) -> Result<Option<ShreddedErasure>> {
        Ok(object_store::get_json(self.objects.as_ref(), &self.retired_key(run)).await?)
    }

    /// How many of the versions the prepare step retired are gone, and one line for each that
    /// still exists (the report fails on it).
    pub(super) async fn retired_versions(&self, run: &RunId) -> Result<(usize, Vec<String>)> {
        let (Some(shredding), Some(retired)) = (self.shredding().await?, self.retired(run).await?)
        else {
            return Ok((0, Vec::new()));
        };
        let wanted: Vec<_> = retired
            .retired
            .iter()
            .filter_map(|(key_id, versions)| Some((parse_key_id_hex(key_id)?, versions.as_ref()?)))
            .flat_map(|(key_id, versions)| versions.iter().map(move |version| (key_id, *version)))
            .collect();
        let left = shredding
            .store()
            .data_keys(&self.config.backup_id, &wanted)
            .await?;
        let lines = left
            .iter()
            .map(|key| {
                format!(
                    "version {} of key id {} still exists",
                    key.version,
                    key_id_hex(&key.key_id)
                )
            })
            .collect();
        Ok((wanted.len() - left.len(), lines))
    }
}

/// A shredded backup seals headers and values: only exact keys can be matched.
fn check_shredded_matchers(matchers: &Matchers) -> Result<()> {
    if matchers.by_key_only() {
        return Ok(());
    }
    Err(MaintenanceError::InvalidRequest(
        "matchers: this backup is shredded, so record headers and values are sealed; erase it \
         by exact key (key or key_base64) only"
            .into(),
    ))
}
