//! The volume binder: every PersistentVolumeClaim becomes Bound at once (dynamic
//! provisioning without a provisioner), with `spec.volumeName: pvc-<uid>`, the requested
//! storage as capacity and the requested access modes. No PersistentVolume object is
//! created.

use super::util::{self, str_at};
use super::{res, Controller, Ctx};
use crate::error::ApiError;
use crate::store::{Event, ObjKey};
use serde_json::{json, Value};
use std::time::Duration;

pub struct PvcController;

impl Controller for PvcController {
    fn name(&self) -> &'static str {
        "volume-binder"
    }

    fn keys_for(&mut self, _ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>) {
        if ev.object.key.resource == res::PVCS && ev.kind != crate::store::EventType::Deleted {
            out.push(ev.object.key.clone());
        }
    }

    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey> {
        util::all_keys(ctx, res::PVCS)
    }

    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError> {
        let Some(mut pvc) = util::get(ctx, key)? else {
            return Ok(None);
        };
        if util::is_deleting(&pvc) {
            return Ok(None);
        }
        let uid = str_at(&pvc, "/metadata/uid")
            .unwrap_or_default()
            .to_string();
        if pvc
            .pointer("/spec/volumeName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            let mut n = pvc.clone();
            n["spec"]["volumeName"] = json!(format!("pvc-{uid}"));
            if !n
                .pointer("/metadata/annotations")
                .is_some_and(Value::is_object)
            {
                n["metadata"]["annotations"] = json!({});
            }
            n["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
            n["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
            pvc = util::write_main(ctx, &ctx.pvcs, &pvc, n)?;
        }
        let storage = pvc
            .pointer("/spec/resources/requests/storage")
            .cloned()
            .unwrap_or(json!("1Gi"));
        let modes = pvc
            .pointer("/spec/accessModes")
            .cloned()
            .unwrap_or(json!(["ReadWriteOnce"]));
        let status =
            json!({"phase": "Bound", "accessModes": modes, "capacity": {"storage": storage}});
        util::write_status(ctx, &ctx.pvcs, &pvc, status)?;
        Ok(None)
    }
}
