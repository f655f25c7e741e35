//! Google's discovery documents as the fake is checked against them: methods (HTTP method,
//! path, query parameters) and schemas (field names, types, enum values), from
//! `tests/schemas/google-apis.json` (made by `scripts/discovery-excerpt.py`).

use serde_json::Value;

pub struct Discovery(Value);

pub struct Method<'a> {
    pub api: &'a str,
    pub name: &'a str,
    pub parameters: Vec<&'a str>,
    /// Schema names; absent for APIs known only from gcloud's generated clients.
    pub request: Option<&'a str>,
    pub response: Option<&'a str>,
}

impl Method<'_> {
    /// Query parameters every Google API takes (gcloud sends `alt=json`, Google's Python
    /// clients `$alt`), besides the method's own.
    pub fn takes(&self, parameter: &str) -> bool {
        matches!(parameter, "alt" | "$alt" | "prettyPrint" | "fields") || self.parameters.contains(&parameter)
    }
}

/// One path segment against a template segment: `{x}` takes any value, `{x}:verb` any value
/// ending in `:verb`.
fn segment_fits(template: &str, actual: &str) -> bool {
    match template.split_once("}:") {
        Some((_, verb)) if template.starts_with('{') => {
            actual.strip_suffix(verb).is_some_and(|rest| rest.ends_with(':') && rest.len() > 1)
        }
        _ => (template.starts_with('{') && !actual.contains(':')) || template == actual,
    }
}

impl Discovery {
    pub fn load() -> Discovery {
        Discovery(serde_json::from_str(include_str!("../schemas/google-apis.json")).unwrap())
    }

    /// The method `http_method path` calls. The fake serves every API on one host, where two
    /// APIs can share a path (Run v1 and Functions v1 `GET /v1/projects/P/locations`): APIs
    /// with a discovery document are preferred to those known only from gcloud's clients.
    pub fn method_for(&self, http_method: &str, path: &str) -> Option<Method<'_>> {
        let actual: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut apis: Vec<(&String, &Value)> = self.0.as_object().unwrap().iter().collect();
        apis.sort_by_key(|(api, _)| api.ends_with(".sdk"));
        for (api, doc) in apis {
            for (name, m) in doc["methods"].as_object().unwrap() {
                let template: Vec<&str> = m["path"].as_str().unwrap().split('/').collect();
                let fits = m["httpMethod"] == http_method
                    && template.len() == actual.len()
                    && template.iter().zip(&actual).all(|(t, a)| segment_fits(t, a));
                if fits {
                    return Some(Method {
                        api,
                        name,
                        parameters: m["parameters"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect(),
                        request: m["request"].as_str(),
                        response: m["response"].as_str(),
                    });
                }
            }
        }
        None
    }

    pub fn check(&self, api: &str, schema: &str, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check_ref(api, schema, value, "$", &mut errors);
        errors
    }

    pub fn check_ref(&self, api: &str, schema: &str, value: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(props) = self.0[api]["schemas"][schema].as_object() else {
            errors.push(format!("{at}: schema {schema} not in the excerpt"));
            return;
        };
        let Some(object) = value.as_object() else {
            errors.push(format!("{at}: expected an object ({schema})"));
            return;
        };
        for (key, v) in object {
            match props.get(key) {
                Some(facts) => self.check_field(api, facts, v, &format!("{at}.{key}"), errors),
                None => errors.push(format!("{at}.{key}: no such field in {schema}")),
            }
        }
    }

    fn check_field(&self, api: &str, facts: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(r) = facts["$ref"].as_str() {
            return self.check_ref(api, r, v, at, errors);
        }
        let ok = match facts["type"].as_str().unwrap_or("any") {
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            // int64 travels as a JSON string.
            "integer" => {
                v.is_i64()
                    || v.is_u64()
                    || (v.is_string() && facts["format"].as_str().is_some_and(|f| f.ends_with("64")))
            }
            "number" => v.is_number(),
            "array" => match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check_field(api, &facts["items"], item, &format!("{at}[{i}]"), errors);
                    }
                    true
                }
                None => false,
            },
            "object" => match (v.as_object(), facts.get("additionalProperties")) {
                (Some(map), Some(inner)) => {
                    for (k, item) in map {
                        self.check_field(api, inner, item, &format!("{at}.{k}"), errors);
                    }
                    true
                }
                (Some(_), None) => true,
                (None, _) => false,
            },
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: {v} is not of type {}", facts["type"]));
        }
        if let (Some(allowed), Some(s)) = (facts["enum"].as_array(), v.as_str())
            && !allowed.iter().any(|a| a == s)
        {
            errors.push(format!("{at}: {s:?} is not one of {allowed:?}"));
        }
    }
}

/// Checks everything that crossed the fake: every request is a method of the excerpt with
/// only its query parameters; every GET answer (fetched again) and every write's request and
/// answer fit their schemas. Returns the problems and the `api:method` names seen.
pub async fn check_traffic(fake: &super::fake_google::FakeGoogle) -> (Vec<String>, std::collections::BTreeSet<String>) {
    let discovery = Discovery::load();
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut fetched = std::collections::BTreeSet::new();
    for request in fake.requests().iter().filter(|r| r.path != "/token") {
        let Some(method) = discovery.method_for(&request.method, &request.path) else {
            problems.push(format!("{} {} is no method in the discovery documents", request.method, request.path));
            continue;
        };
        seen.insert(format!("{}:{}", method.api, method.name));
        for (param, _) in &request.query {
            if !method.takes(param) {
                problems.push(format!("{}: {param} is not a parameter of {}", request.path, method.name));
            }
        }
        let key = format!("{:?}", (&request.path, &request.query));
        if let (true, Some(schema)) = (request.method == "GET" && fetched.insert(key), method.response) {
            let body = fake.get_json(&request.path, &request.query).await;
            problems.extend(
                discovery.check(method.api, schema, &body).into_iter().map(|e| format!("{}: {e}", request.path)),
            );
        }
    }
    for exchange in fake.seen(|s| s.exchanges.clone()) {
        let Some(method) = discovery.method_for(&exchange.method, &exchange.path) else { continue };
        let bodies = [(method.request, &exchange.request, "request"), (method.response, &exchange.response, "answer")];
        for (schema, body, which) in bodies {
            if let (Some(schema), true) = (schema, exchange.status < 300) {
                let errors = discovery.check(method.api, schema, body);
                problems
                    .extend(errors.into_iter().map(|e| format!("{} {} {which}: {e}", exchange.method, exchange.path)));
            }
        }
    }
    (problems, seen)
}
