//! Whether `mooring dr failover|failback|drill` may ask for an operation now.
//!
//! A request is one field in the plan's status that the controller consumes; writing a
//! second one while an operation or a drill runs, or a failback while the primary still
//! serves, would only be refused later, after the person asking has gone. The CLI refuses
//! it upfront with this rule (the controller applies the phase part again when it takes
//! the request, since the status can change in between).

use super::{FAILBACK, RUNNING};
use mooring_core::dr::{DisasterRecoveryPlanStatus, Phase};

/// Why a request cannot be written now (`None`: it can).
pub fn request_refusal(kind: &str, st: &DisasterRecoveryPlanStatus) -> Option<String> {
    if let Some(r) = &st.request {
        return Some(format!(
            "a {} request{} is already pending (requested at {}); the controller has not started it yet",
            r.kind,
            r.incident
                .as_deref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default(),
            r.requested_at
        ));
    }
    if let Some(op) = st.operation.as_ref().filter(|o| o.phase == RUNNING) {
        return Some(format!(
            "a {} ({}) is running since {}; see `mooring dr status`",
            op.kind, op.incident, op.started_at
        ));
    }
    if let Some(d) = &st.drill {
        return Some(format!(
            "drill {} is running (stage {}) since {}; see `mooring dr status`",
            d.incident, d.stage, d.started_at
        ));
    }
    let wanted = match kind {
        FAILBACK => Phase::StandbyActive,
        _ => Phase::PrimaryActive,
    };
    (st.phase != wanted).then(|| {
        format!(
            "the plan is {}; a {} needs it {}",
            st.phase.as_str(),
            kind.to_ascii_lowercase(),
            wanted.as_str()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dr::{DRILL, FAILOVER};
    use mooring_core::dr::{DrOperation, DrRequest, DrillState};

    #[test]
    fn a_request_is_refused_while_anything_runs_or_in_the_wrong_phase() {
        let idle = DisasterRecoveryPlanStatus::default();
        assert_eq!(request_refusal(FAILOVER, &idle), None);
        assert_eq!(request_refusal(DRILL, &idle), None);
        assert_eq!(
            request_refusal(FAILBACK, &idle).as_deref(),
            Some("the plan is PrimaryActive; a failback needs it StandbyActive")
        );
        let standby = DisasterRecoveryPlanStatus {
            phase: Phase::StandbyActive,
            ..Default::default()
        };
        assert_eq!(request_refusal(FAILBACK, &standby), None);
        assert!(request_refusal(FAILOVER, &standby)
            .is_some_and(|m| m.contains("a failover needs it PrimaryActive")));
        let running = DisasterRecoveryPlanStatus {
            phase: Phase::FailingOver,
            operation: Some(DrOperation {
                kind: "Failover".into(),
                incident: "INC-1".into(),
                phase: "Running".into(),
                started_at: "2026-12-06T10:00:00Z".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            request_refusal(DRILL, &running).as_deref(),
            Some(
                "a Failover (INC-1) is running since 2026-12-06T10:00:00Z; see `mooring dr status`"
            )
        );
        let drilling = DisasterRecoveryPlanStatus {
            phase: Phase::Drilling,
            drill: Some(DrillState {
                incident: "drill-1".into(),
                stage: "Injecting".into(),
                started_at: "2026-12-06T10:00:00Z".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(request_refusal(FAILOVER, &drilling).is_some_and(|m| m.contains("drill drill-1")));
        let pending = DisasterRecoveryPlanStatus {
            request: Some(DrRequest {
                kind: "Drill".into(),
                requested_at: "2026-12-06T10:00:00Z".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(request_refusal(FAILOVER, &pending).is_some_and(|m| m.contains("already pending")));
    }
}
