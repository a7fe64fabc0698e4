//! Requests to `lab serve` as a browser sends them, and its answers whatever their status.
#![allow(dead_code)]

/// Status and body, for answers of any status.
pub fn answer(resp: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    let r = response(resp);
    (r.status(), r.into_string().unwrap())
}

/// The status, for answers of any status.
pub fn status(resp: Result<ureq::Response, ureq::Error>) -> u16 {
    response(resp).status()
}

fn response(resp: Result<ureq::Response, ureq::Error>) -> ureq::Response {
    match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    }
}

/// One answer in full: a save's 303 is checked by where it points.
pub struct Answer {
    pub status: u16,
    /// The `Location` header; empty when there is none.
    pub location: String,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    fn of(resp: Result<ureq::Response, ureq::Error>) -> Self {
        let r = response(resp);
        let location = r.header("Location").unwrap_or_default().to_string();
        Answer {
            status: r.status(),
            location,
            content_type: r.content_type().to_string(),
            body: r.into_string().unwrap(),
        }
    }
}

/// A client that follows no redirects, so each answer is the server's own.
pub struct Client {
    agent: ureq::Agent,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            agent: ureq::AgentBuilder::new().redirects(0).build(),
        }
    }
}

impl Client {
    pub fn get(&self, url: &str) -> Answer {
        Answer::of(self.agent.get(url).call())
    }

    /// POST `form`, already URL-encoded, as a page's form sends it.
    pub fn post_form(&self, url: &str, form: &str) -> Answer {
        Answer::of(
            self.agent
                .post(url)
                .set("Content-Type", "application/x-www-form-urlencoded")
                .send_string(form),
        )
    }

    /// POST `fields`, encoded here.
    pub fn post_fields(&self, url: &str, fields: &[(&str, &str)]) -> Answer {
        Answer::of(self.agent.post(url).send_form(fields))
    }
}
