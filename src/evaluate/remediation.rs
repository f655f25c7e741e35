//! The command an on-call engineer runs to fix a violation.

use crate::evaluate::Violation;
use crate::inventory::{FunctionOrigin, Kind, Workload};

/// One line, every distinct fix joined with `; `, or `None` for a compliant workload.
pub fn for_violations(w: &Workload, violations: &[Violation]) -> Option<String> {
    let mut fixes: Vec<String> = Vec::new();
    for v in violations {
        let fix = fix_for(w, *v);
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    }
    (!fixes.is_empty()).then(|| fixes.join("; "))
}

fn fix_for(w: &Workload, violation: Violation) -> String {
    let (name, project, location) = (&w.name, &w.project, &w.location);
    match violation {
        Violation::BinauthzDisabled | Violation::NonDefaultPolicy | Violation::Breakglass => enable_default(w),
        Violation::AllowlistMissing => {
            let repository = w.function.as_ref().map(FunctionOrigin::build_repository).unwrap_or_default();
            format!(
                "add namePattern '{repository}/**' to admissionWhitelistPatterns: gcloud container binauthz policy export --project {project} > policy.yaml && gcloud container binauthz policy import policy.yaml --project {project}"
            )
        }
        Violation::Gen1Function => format!(
            "redeploy as a 2nd gen function: gcloud functions deploy {name} --gen2 --project {project} --region {location} --binary-authorization default"
        ),
        Violation::ExemptImage => format!(
            "deploy an image from a repository the policy does not exempt, or narrow the allowlist pattern matching {}",
            w.images.first().map(String::as_str).unwrap_or("the image")
        ),
    }
}

fn enable_default(w: &Workload) -> String {
    let (name, project, location) = (&w.name, &w.project, &w.location);
    let command = match w.kind {
        Kind::Function => "gcloud functions deploy",
        Kind::Service => "gcloud run services update",
        Kind::Job => "gcloud run jobs update",
        Kind::WorkerPool => "gcloud beta run worker-pools update",
    };
    format!("{command} {name} --project {project} --region {location} --binary-authorization default")
}
