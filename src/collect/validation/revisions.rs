//! The images of serving revisions, by digest. A revision never changes, so each is read
//! once and kept while it serves; a project's revisions list is read only when one of its
//! serving revisions is not known yet.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::collect::client::ApiClient;
use crate::config::Endpoints;
use crate::google::run_v1::{KnativeList, Revision};
use crate::inventory::Api;

/// (project, location, revision name): revision names are unique in a project's region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RevisionKey {
    project: String,
    location: String,
    name: String,
}

impl RevisionKey {
    pub fn new(project: &str, location: &str, name: &str) -> RevisionKey {
        RevisionKey { project: project.to_owned(), location: location.to_owned(), name: name.to_owned() }
    }
}

/// Serving revisions' images, across cycles.
#[derive(Default)]
pub struct Cache(Mutex<HashMap<RevisionKey, Arc<Vec<String>>>>);

type Images = BTreeMap<(String, String), Result<Vec<String>, String>>;

impl Cache {
    /// The images of each `(location, revision)` of `project` in `wanted`.
    pub async fn read(
        &self,
        client: &ApiClient,
        endpoints: &Endpoints,
        project: &str,
        wanted: &BTreeSet<(String, String)>,
    ) -> Images {
        let mut images = Images::new();
        let mut missing = Vec::new();
        {
            let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
            for (location, name) in wanted {
                match cache.get(&RevisionKey::new(project, location, name)) {
                    Some(known) => {
                        images.insert((location.clone(), name.clone()), Ok(known.to_vec()));
                    }
                    None => missing.push((location.clone(), name.clone())),
                }
            }
        }
        if missing.is_empty() {
            return images;
        }
        let read = list(client, endpoints, project, &missing).await;
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (key, result) in missing.into_iter().zip(read) {
            if let Ok(found) = &result {
                cache.insert(RevisionKey::new(project, &key.0, &key.1), Arc::new(found.clone()));
            }
            images.insert(key, result);
        }
        images
    }

    /// Drops every revision not in `served`.
    pub fn keep_only(&self, served: &[RevisionKey]) {
        let served: HashSet<&RevisionKey> = served.iter().collect();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).retain(|key, _| served.contains(key));
    }
}

/// `GET /apis/serving.knative.dev/v1/namespaces/P/revisions` on the global endpoint: every
/// region's revisions in one list (as in a recorded real answer), paged only if the server
/// says so (`metadata.continue`). One result per `missing` revision, in order.
async fn list(
    client: &ApiClient,
    endpoints: &Endpoints,
    project: &str,
    missing: &[(String, String)],
) -> Vec<Result<Vec<String>, String>> {
    let url = format!("{}/apis/serving.knative.dev/v1/namespaces/{project}/revisions", endpoints.run);
    let listing = match client.list::<KnativeList<Revision>>(Api::Run, &url, &[]).await {
        Ok(listing) => listing,
        Err(e) => return missing.iter().map(|_| Err(e.to_string())).collect(),
    };
    let found: HashMap<(&str, &str), &Revision> =
        listing.items.iter().filter_map(|r| Some(((r.location()?, r.metadata.name.as_str()), r))).collect();
    missing
        .iter()
        .map(|(location, name)| match found.get(&(location.as_str(), name.as_str())) {
            Some(revision) => revision.images().map_err(|e| format!("GET {url}: {e}")),
            None if listing.unreachable.iter().any(|u| u.contains(location.as_str())) => {
                Err(format!("GET {url}: {location} was unreachable"))
            }
            None => Err(format!("revision {name} ({location}) serves but is not in GET {url}")),
        })
        .collect()
}
