//! Playing one case through one runner: steps in order, each judged.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::{
    cases::{Case, Step},
    expect::{brief, check},
    foreign,
    runner::{Answer, Runner},
    template::{Vars, expand_args},
};

/// Why a case did not pass.
pub enum Failure {
    /// The behaviour differs from the case: the message says how.
    Case(String),
    /// The runner died, hung or broke the protocol: start another.
    Runner(String),
}

/// How often a step with `until_ms` is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Plays `case` with `${queue}` set to `queue`, then stops the workers it
/// left running.
pub async fn play(case: &Case, runner: &mut Runner, channel: &Channel, queue: &str) -> Result<(), Failure> {
    let mut vars = Vars::default();
    vars.set("queue", json!(queue));
    let mut workers: Vec<Value> = Vec::new();
    let steps = async {
        for (i, step) in case.steps.iter().enumerate() {
            let at = |message: String| format!("step {} ({}): {message}", i + 1, step.kind);
            match play_step(step, &mut vars, runner, channel).await {
                Ok(()) => {}
                Err(Failure::Case(message)) => return Err(Failure::Case(at(message))),
                Err(Failure::Runner(message)) => return Err(Failure::Runner(at(message))),
            }
            let worker = step.args.get("worker").cloned().unwrap_or_default();
            match step.kind.as_str() {
                "start_worker" => workers.push(worker),
                "stop_worker" => workers.retain(|w| w != &worker),
                _ => {}
            }
        }
        Ok(())
    };
    let outcome = match tokio::time::timeout(Duration::from_millis(case.timeout_ms), steps).await {
        Ok(outcome) => outcome,
        Err(_) => return Err(Failure::Runner(format!("the case took longer than {} ms", case.timeout_ms))),
    };
    if !matches!(outcome, Err(Failure::Runner(_))) {
        for worker in workers {
            if let Err(message) = runner.call("stop_worker", &json!({"worker": worker})).await {
                return Err(Failure::Runner(format!("stopping worker {worker}: {message}")));
            }
        }
    }
    outcome
}

async fn play_step(step: &Step, vars: &mut Vars, runner: &mut Runner, channel: &Channel) -> Result<(), Failure> {
    let args = vars.resolve(&step.args).and_then(expand_args).map_err(Failure::Case)?;
    let resolve = |v: &Option<Value>| v.as_ref().map(|v| vars.resolve(v)).transpose().map_err(Failure::Case);
    let (expect, expect_error) = (resolve(&step.expect)?, resolve(&step.expect_error)?);
    let deadline = step.until_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    loop {
        let answer = if foreign::KINDS.contains(&step.kind.as_str()) {
            foreign::run(channel, &step.kind, args.clone()).await.map_err(Failure::Case)?
        } else {
            runner.call(&step.kind, &args).await.map_err(Failure::Runner)?
        };
        match judge(&answer, expect.as_ref(), expect_error.as_ref()) {
            Ok(saved) => {
                if let Some(name) = &step.save_as {
                    vars.set(name, saved);
                }
                return Ok(());
            }
            Err(message) => match deadline {
                Some(deadline) if Instant::now() < deadline && !matches!(answer, Answer::Unsupported(_)) => {
                    tokio::time::sleep(RETRY_EVERY).await;
                }
                Some(_) => {
                    let ms = step.until_ms.unwrap_or_default();
                    return Err(Failure::Case(format!("{message} (still, after {ms} ms)")));
                }
                None => return Err(Failure::Case(message)),
            },
        }
    }
}

/// Whether `answer` is what the step expects; the value to save if so.
fn judge(answer: &Answer, expect: Option<&Value>, expect_error: Option<&Value>) -> Result<Value, String> {
    match answer {
        Answer::Unsupported(why) => Err(format!("the runner does not support this step: {why}")),
        Answer::Result(result) => match (expect, expect_error) {
            (_, Some(error)) => Err(format!("expected an error matching {}, got {}", brief(error), brief(result))),
            (Some(expect), None) => check(expect, result).map(|()| result.clone()),
            (None, None) => Ok(result.clone()),
        },
        Answer::Error { code, message } => {
            let error = json!({"code": code, "message": message});
            match expect_error {
                Some(expect) => check(expect, &error).map(|()| error),
                None => Err(format!("failed with {code}: {message}")),
            }
        }
    }
}
