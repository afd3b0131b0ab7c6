//! Progress of long build steps on stderr: indicatif bars and spinners when stderr is a
//! terminal, otherwise one plain line when a step starts and one when it ends (so logs
//! and tests see the steps without control characters). Never touches stdout.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    mode: Mode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Quiet,
}

/// One running step.
#[derive(Debug)]
pub(crate) struct Step {
    bar: Option<ProgressBar>,
    label: String,
    mode: Mode,
    start: Instant,
}

impl Progress {
    /// Bars on a terminal, plain lines otherwise.
    pub(crate) fn stderr() -> Progress {
        Progress {
            mode: if std::io::stderr().is_terminal() {
                Mode::Bars
            } else {
                Mode::Lines
            },
        }
    }

    /// Starts a step; `total` (bytes or entries) makes a bar, `None` a spinner.
    pub(crate) fn step(&self, label: &str, total: Option<u64>) -> Step {
        let bar = match self.mode {
            Mode::Bars => {
                let bar = match total {
                    Some(n) => ProgressBar::new(n).with_style(
                        ProgressStyle::with_template(
                            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {elapsed}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    ),
                    None => ProgressBar::new_spinner().with_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    ),
                };
                bar.set_message(label.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                Some(bar)
            }
            Mode::Lines => {
                eprintln!("build: {label} …");
                None
            }
            Mode::Quiet => None,
        };
        Step {
            bar,
            label: label.to_string(),
            mode: self.mode,
            start: Instant::now(),
        }
    }
}

impl Step {
    /// Advances a bar by `n`.
    pub(crate) fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Ends the step with a summary.
    pub(crate) fn finish(self, summary: &str) {
        let secs = self.start.elapsed().as_secs_f64();
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        if self.mode != Mode::Quiet {
            eprintln!("build: {}: {summary} ({secs:.1} s)", self.label);
        }
    }
}
