//! The fix an on-call engineer pastes. `command` holds only what a shell can run as printed:
//! `gcloud` commands, the auditor itself as a policy filter, and plain shell, joined by `&&`
//! across lines so that a failed step stops the rest. Every value taken from Google (names,
//! sources) is shell-quoted: a snapshot can hold anything. Explanations, and the reason when
//! no command is safe, go in `note`.

use crate::attest::KMS_KEY_ID_PREFIX;
use crate::evaluate::validation::ServingFix;
use crate::evaluate::{AllowlistEntry, AllowlistStatus, Violation};
use crate::inventory::{FunctionOrigin, FunctionSource, Kind, Workload};

/// What the evaluator knows that decides the fix.
#[derive(Debug, Default)]
pub struct Context {
    /// The build repository entry this workload's deploy needs and the policy lacks.
    pub allowlist: Option<AllowlistEntry>,
    /// The policy patterns that exempt the workload's image.
    pub exempted_by: Vec<Exemption>,
    /// What would make the serving revisions pass (continuous validation).
    pub serving: ServingFix,
}

#[derive(Debug)]
pub struct Exemption {
    pub pattern: String,
    /// The pattern exempts a build repository the project's functions deploy from.
    pub needed_by_functions: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Remediation {
    pub command: Option<String>,
    pub note: Option<String>,
}

/// Builds the command from steps and the note from sentences, in the order they must happen.
#[derive(Default)]
struct Plan {
    steps: Vec<String>,
    notes: Vec<String>,
}

impl Plan {
    fn step(&mut self, command: String) {
        if !self.steps.contains(&command) {
            self.steps.push(command);
        }
    }

    fn note(&mut self, sentence: impl Into<String>) {
        let sentence = sentence.into();
        if !self.notes.contains(&sentence) {
            self.notes.push(sentence);
        }
    }

    fn finish(self) -> Remediation {
        Remediation {
            command: (!self.steps.is_empty()).then(|| self.steps.join(" &&\n")),
            note: (!self.notes.is_empty()).then(|| self.notes.join(" ")),
        }
    }
}

pub fn for_violations(w: &Workload, violations: &[Violation], ctx: &Context) -> Remediation {
    let mut plan = Plan::default();
    if violations.is_empty() {
        return plan.finish();
    }
    if violations.contains(&Violation::Gen1Function) {
        upgrade_gen1(&mut plan, w, ctx.allowlist.as_ref());
        return plan.finish();
    }
    // An enforcing policy refuses a function's deploy until its build repository is exempted.
    if let Some(entry) = &ctx.allowlist {
        allowlist_step(&mut plan, w, entry);
    }
    // Before the setting: once the workload is enforced, a change that routes traffic is
    // checked, so the serving revisions must already pass.
    if violations.contains(&Violation::DeniedRevisionServing) {
        plan.note(format!(
            "The policy's default rule is ALWAYS_DENY, yet {} still serve: deployed today, their images would be refused. No command is safe: exempting the images (allowlist) or changing the rule is a policy decision, and deleting the {} stops it serving.",
            ctx.serving.failing.join(", "),
            w.kind.to_string().replace('_', " ")
        ));
    }
    if violations.contains(&Violation::UnattestedRevision) {
        serve_attested(&mut plan, w, &ctx.serving);
    }
    let setting_wrong = violations
        .iter()
        .any(|v| matches!(v, Violation::BinauthzDisabled | Violation::NonDefaultPolicy | Violation::Breakglass));
    if setting_wrong {
        enable_default(&mut plan, w, violations.contains(&Violation::Breakglass));
    }
    if violations.contains(&Violation::ExemptImage) {
        narrow_exemption(&mut plan, w, &ctx.exempted_by);
    }
    plan.finish()
}

fn allowlist_step(plan: &mut Plan, w: &Workload, entry: &AllowlistEntry) {
    let pattern = entry.documented_pattern();
    plan.step(edit_policy(&w.project, &format!("--add {}", quote(&pattern))));
    if entry.status == AllowlistStatus::NotDocumentedPattern {
        plan.note(format!(
            "The policy exempts {repo}/* (images directly in the repository), not the documented {pattern}; builds can store images below that level, so the fix adds {pattern}.",
            repo = entry.repository,
        ));
    } else {
        plan.note(format!(
            "The project policy must exempt {pattern} before this function can deploy under an enforcing policy; the first step adds it (the auditor only edits the exported policy)."
        ));
    }
}

/// `--binary-authorization default` on the workload, the one way its kind's `gcloud` sets it.
fn enable_default(plan: &mut Plan, w: &Workload, breakglass: bool) {
    let target = target(w);
    match (w.kind, &w.function) {
        (Kind::Function, Some(FunctionOrigin::FunctionsApi { source, .. })) => redeploy_function(plan, w, source),
        (Kind::Function, _) => plan.note("Redeploy the function with --binary-authorization default."),
        (Kind::WorkerPool, _) => {
            if breakglass {
                // `worker-pools update --binary-authorization default` keeps an existing
                // breakglass justification (services and jobs drop it); both flags in one
                // command are refused, so clear first.
                plan.step(format!("gcloud beta run worker-pools update {target} --clear-binary-authorization"));
            }
            plan.step(format!("gcloud beta run worker-pools update {target} --binary-authorization default"));
            plan.note(not_retroactive("worker pool"));
        }
        (Kind::Service, _) => {
            plan.step(format!("gcloud run services update {target} --binary-authorization default"));
            plan.note(not_retroactive("service"));
        }
        (Kind::Job, _) => {
            plan.step(format!("gcloud run jobs update {target} --binary-authorization default"));
            plan.note("Jobs are checked at each execution: the next execution is enforced.");
        }
    }
}

/// Unattested images serve: move the traffic to a revision that passes, or attest the images.
fn serve_attested(plan: &mut Plan, w: &Workload, fix: &ServingFix) {
    let failing = fix.failing.join(", ");
    let is_run_service = w.kind == Kind::Service && !matches!(w.function, Some(FunctionOrigin::FunctionsApi { .. }));
    if let (true, Some(keep)) = (is_run_service, &fix.keep) {
        let mut command = format!("gcloud run services update-traffic {}", target(w));
        if !fix.drop_tags.is_empty() {
            command.push_str(&format!(" --remove-tags={}", quote(&fix.drop_tags.join(","))));
        }
        command.push_str(&format!(" --to-revisions={}", quote(&format!("{keep}=100"))));
        plan.step(command);
        plan.note(format!(
            "{failing} serve images without a valid attestation from every attestor the policy requires today; the fix moves all traffic to {keep}, which passes{}. Binary Authorization checks every revision a traffic change routes to.",
            if fix.drop_tags.is_empty() { "" } else { ", and removes the tags that keep the others reachable" }
        ));
        return;
    }
    let signable = !fix.attest.is_empty() && fix.attest.iter().all(|(_, _, key)| key.is_some());
    if signable {
        for (image, attestor, key) in &fix.attest {
            let project = attestor.split('/').nth(1).unwrap_or_default();
            let version = key.as_deref().unwrap_or_default();
            // gcloud names the signature's key after its KMS endpoint (its resource URI there,
            // from api_endpoint_overrides/cloudkms when the operator set one, such as a
            // private endpoint: then an id no attestor lists, and an attestation that never
            // verifies): the override pins the id the attestor lists.
            plan.step(format!(
                "gcloud beta container binauthz attestations sign-and-create --project={} --artifact-url={} --attestor={} --keyversion={} --public-key-id-override={}",
                quote(project),
                quote(image),
                quote(attestor),
                quote(version),
                quote(&format!("{KMS_KEY_ID_PREFIX}{version}"))
            ));
        }
        plan.note(format!(
            "{failing} serve images without a valid attestation, and no serving revision passes. The fix signs each image with its attestor's Cloud KMS key: run it only for images the attestor vouches for (what your build pipeline produced); attesting whatever serves to quiet this report defeats Binary Authorization. Otherwise deploy an attested image."
        ));
        return;
    }
    let steps = fix
        .attest
        .first()
        .map(|(image, attestor, _)| {
            format!(
                " To attest {image} by {attestor}: gcloud container binauthz create-signature-payload --artifact-url={image} > payload.json, sign payload.json with one of the attestor's keys, then gcloud container binauthz attestations create --artifact-url={image} --attestor={attestor} --signature-file=SIGNATURE --public-key-id=KEY_ID."
            )
        })
        .unwrap_or_default();
    plan.note(format!(
        "No safe command: {failing} serve images without a valid attestation, no serving revision passes, and the attestor's key is not one gcloud can sign with here (Cloud KMS). Deploy an attested image, or have the attestor's signer attest the image.{steps}"
    ));
}

fn not_retroactive(kind: &str) -> String {
    format!(
        "Binary Authorization is checked when a revision is deployed, never after: the revision this {kind} serves now was not checked and keeps serving until the next deploy, which is."
    )
}

/// `gcloud functions deploy` rebuilds from `--source`, or from the CURRENT DIRECTORY without
/// it: only a deploy that names the function's own deployed source is safe to print.
fn redeploy_function(plan: &mut Plan, w: &Workload, source: &FunctionSource) {
    if w.is_firebase_managed() {
        plan.note(
            "Deployed by the Firebase CLI (label deployment-tool=cli-firebase): a gcloud deploy would be undone by the next firebase deploy; set Binary Authorization in the Firebase deploy.",
        );
        return;
    }
    match source {
        FunctionSource::Flag(source) => {
            plan.step(format!(
                "gcloud functions deploy {} --source={} --binary-authorization default",
                target(w),
                quote(source)
            ));
            plan.note("The deploy rebuilds the function from the source it was last deployed from.");
        }
        FunctionSource::KeptWithoutFlag => {
            plan.step(format!("gcloud functions deploy {} --binary-authorization default", target(w)));
            plan.note("The function builds from a Cloud Source Repository, which gcloud keeps when --source is left out; the deploy rebuilds from it.");
        }
        FunctionSource::NotReusable(why) => plan.note(format!(
            "No safe command: {why}. Redeploy from the function's source with --binary-authorization default (gcloud functions deploy without --source uploads the current directory)."
        )),
    }
}

/// A 1st gen function cannot be redeployed as 2nd gen; Google's path is the upgrade flow,
/// after which Binary Authorization is set with a deploy (which, under an enforcing policy,
/// needs the 2nd gen build repository exempted first).
fn upgrade_gen1(plan: &mut Plan, w: &Workload, allowlist: Option<&AllowlistEntry>) {
    if w.is_firebase_managed() {
        plan.note("Deployed by the Firebase CLI: upgrade it to 2nd gen and set Binary Authorization through the Firebase deploy.");
        return;
    }
    let redeployable = matches!(
        &w.function,
        Some(FunctionOrigin::FunctionsApi { source: FunctionSource::Flag(_) | FunctionSource::KeptWithoutFlag, .. })
    );
    if let (true, Some(entry)) = (redeployable, allowlist) {
        allowlist_step(plan, w, entry);
    }
    let target = target(w);
    for step in ["--setup-config", "--redirect-traffic", "--commit"] {
        plan.step(format!("gcloud alpha functions upgrade {target} {step}"));
    }
    plan.note("1st gen functions do not run on Cloud Run and cannot be protected; `gcloud functions deploy --gen2` refuses an existing 1st gen function, so the upgrade flow makes it 2nd gen first.");
    if let Some(FunctionOrigin::FunctionsApi { source, .. }) = &w.function {
        redeploy_function(plan, w, source);
    }
    if let (false, Some(entry)) = (redeployable, allowlist) {
        plan.note(format!(
            "Under an enforcing policy that deploy also needs {} in the policy's allowlist.",
            entry.documented_pattern()
        ));
    }
}

fn narrow_exemption(plan: &mut Plan, w: &Workload, exempted_by: &[Exemption]) {
    let (needed, removable): (Vec<&Exemption>, Vec<&Exemption>) =
        exempted_by.iter().partition(|e| e.needed_by_functions);
    if !removable.is_empty() && needed.is_empty() {
        let removals: Vec<String> = removable.iter().map(|e| format!("--remove {}", quote(&e.pattern))).collect();
        plan.step(edit_policy(&w.project, &removals.join(" ")));
        plan.note(
            "The allowlist exempts this image from every check; the fix removes the exempting pattern (no function of the project needs it), so the next deploy of any image it matched must pass the policy.",
        );
    } else {
        let patterns: Vec<&str> = needed.iter().map(|e| e.pattern.as_str()).collect();
        plan.note(format!(
            "No safe command: {} exempts this image and also the build repository the project's functions need (Google documents it for functions). That entry exempts every image in the repository, including every `gcloud run deploy --source` build in the region: deploy this workload from an image in a repository the policy does not exempt.",
            patterns.join(", ")
        ));
    }
}

/// Exports the project's policy, edits its allowlist through the auditor, imports it back.
/// `gcloud ... policy import` takes only `.yaml`/`.json` file names, hence the file inside a
/// fresh temporary directory rather than a bare `mktemp` name; the filter writes JSON.
fn edit_policy(project: &str, edits: &str) -> String {
    let project = quote(project);
    format!(
        "policy=\"$(mktemp -d)/policy.json\" && gcloud container binauthz policy export --project {project} | binauthz-auditor allowlist {edits} > \"$policy\" && gcloud container binauthz policy import \"$policy\" --project {project}"
    )
}

/// `NAME --project P --region R`, quoted.
fn target(w: &Workload) -> String {
    format!("{} --project {} --region {}", quote(&w.name), quote(&w.project), quote(&w.location))
}

/// A shell word for `s`: bare when it holds only characters no shell treats specially,
/// single-quoted otherwise.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.,:/@%+=".contains(c));
    if plain { s.to_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_google_cannot_break_out_of_the_command() {
        assert_eq!(quote("api-v2"), "api-v2");
        assert_eq!(quote("us-docker.pkg.dev/p/r/**"), "'us-docker.pkg.dev/p/r/**'");
        assert_eq!(quote("x; rm -rf ~"), "'x; rm -rf ~'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
