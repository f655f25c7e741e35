//! docs/deploy.md's `gcloud` commands, pasted into bash as printed, with the real Google Cloud
//! CLI pointed at the fake Google: gcloud accepts every flag and value (an unknown flag, a bad
//! probe key or a wrong choice fails before any request) and goes on to call Google. The fake
//! answers what it does not know with 404, so the commands fail after that: what is checked is
//! that gcloud got as far as asking. Skipped, with one line, where gcloud is absent.

pub mod support;

use support::fake_google::FakeGoogle;
use support::fake_google::world::World;
use support::gcloud::Gcloud;

const TEST: &str = "every_gcloud_command_in_the_deploy_guide_parses_in_real_gcloud";

/// The guide's ```sh blocks, in order.
fn shell_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```sh block");
    blocks
}

/// What gcloud prints when it refuses its arguments, before any request.
const REFUSALS: [&str; 6] =
    ["unrecognized arguments", "argument --", "Invalid value for", "not recognized", "Invalid choice", "is required"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gcloud_command_in_the_deploy_guide_parses_in_real_gcloud() {
    let guide = std::fs::read_to_string("docs/deploy.md").unwrap();
    let blocks = shell_blocks(&guide);
    // The Cloud Run recipes' values, which the blocks after them use.
    let values = blocks.iter().find(|b| b.starts_with("PROJECT=") && b.contains("IMAGE=")).expect("the values block");
    let with_gcloud: Vec<&String> =
        blocks.iter().filter(|b| b.lines().any(|l| l.trim_start().starts_with("gcloud "))).collect();
    for needle in ["gcloud run jobs deploy", "gcloud run deploy", "gcloud scheduler jobs create http"] {
        assert!(with_gcloud.iter().any(|b| b.contains(needle)), "the guide has no `{needle}`");
    }

    let fake = FakeGoogle::start(World::default()).await;
    let Some(gcloud) = Gcloud::against(&fake, TEST).await else { return };
    for block in with_gcloud {
        let before = fake.requests().len();
        let (code, _, stderr) = gcloud.paste(&format!("{values}\n{block}")).await;
        assert_ne!(code, 2, "gcloud refused its arguments:\n{block}\n{stderr}");
        for refusal in REFUSALS {
            assert!(!stderr.contains(refusal), "gcloud refused its arguments ({refusal}):\n{block}\n{stderr}");
        }
        assert!(fake.requests().len() > before, "gcloud never called an API:\n{block}\n{stderr}");
    }
}
