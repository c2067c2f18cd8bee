//! Ordered parallel processing of lines: a reader cuts the input into
//! batches, workers turn each batch into output text, and the caller's thread
//! writes the texts in input order. Memory is bounded by the batches in flight.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use crate::lines::{read_bounded_line, Line};

/// Lines per batch.
const BATCH_LINES: usize = 2048;
/// Bytes per batch (a batch ends early past this).
const BATCH_BYTES: usize = 1 << 20;

/// Some consecutive lines of input.
#[derive(Default)]
pub(crate) struct Batch {
    data: Vec<u8>,
    /// End offset in `data` of each line; `None` for a line over the length limit.
    ends: Vec<Option<usize>>,
}

/// One line of a batch.
pub(crate) enum BatchLine<'a> {
    /// A line within the limit (without its newline).
    Token(&'a [u8]),
    /// A line over the limit (its bytes were not kept).
    TooLong,
}

impl Batch {
    /// The lines, in order.
    pub(crate) fn lines(&self) -> impl Iterator<Item = BatchLine<'_>> {
        let mut start = 0;
        self.ends.iter().map(move |end| match end {
            Some(end) => {
                let line = self.data.get(start..*end).unwrap_or_default();
                start = *end;
                BatchLine::Token(line)
            }
            None => BatchLine::TooLong,
        })
    }
}

/// Reads the next batch; `None` at end of input.
fn read_batch<R: BufRead>(
    input: &mut R,
    max_line: usize,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<Batch>> {
    let mut batch = Batch::default();
    while batch.ends.len() < BATCH_LINES && batch.data.len() < BATCH_BYTES {
        match read_bounded_line(input, line, max_line)? {
            Line::Eof => break,
            Line::TooLong => batch.ends.push(None),
            Line::Fits => {
                batch.data.extend_from_slice(line);
                batch.ends.push(Some(batch.data.len()));
            }
        }
    }
    Ok((!batch.ends.is_empty()).then_some(batch))
}

/// Runs `work` over every batch of `input` on `jobs` threads and writes the
/// texts it produces to `out` in input order. Returns true when every call
/// of `work` returned true.
pub(crate) fn run<R, W, F>(
    mut input: R,
    out: &mut W,
    jobs: usize,
    max_line: usize,
    work: F,
) -> anyhow::Result<bool>
where
    R: BufRead + Send,
    W: Write,
    F: Fn(&Batch, &mut String) -> bool + Sync,
{
    let mut line = Vec::new();
    if jobs <= 1 {
        let mut all_ok = true;
        let mut text = String::new();
        while let Some(batch) = read_batch(&mut input, max_line, &mut line)? {
            text.clear();
            all_ok &= work(&batch, &mut text);
            out.write_all(text.as_bytes())?;
        }
        return Ok(all_ok);
    }
    std::thread::scope(|scope| {
        let (job_tx, job_rx) = sync_channel::<(u64, Batch)>(jobs * 2);
        let job_rx: Arc<Mutex<Receiver<(u64, Batch)>>> = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = sync_channel::<(u64, String, bool)>(jobs * 2);
        let reader = scope.spawn(move || -> std::io::Result<()> {
            let mut seq = 0u64;
            while let Some(batch) = read_batch(&mut input, max_line, &mut line)? {
                if job_tx.send((seq, batch)).is_err() {
                    break; // the writer stopped
                }
                seq += 1;
            }
            Ok(())
        });
        for _ in 0..jobs {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let work = &work;
            scope.spawn(move || loop {
                let next = match job_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((seq, batch)) = next else { return };
                let mut text = String::with_capacity(batch.data.len() + batch.ends.len() * 24);
                let ok = work(&batch, &mut text);
                if done_tx.send((seq, text, ok)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        drop(job_rx);
        let mut pending: BTreeMap<u64, (String, bool)> = BTreeMap::new();
        let mut next = 0u64;
        let mut all_ok = true;
        let mut write_result = Ok(());
        for (seq, text, ok) in done_rx.iter() {
            pending.insert(seq, (text, ok));
            while let Some((text, ok)) = pending.remove(&next) {
                all_ok &= ok;
                if write_result.is_ok() {
                    write_result = out.write_all(text.as_bytes());
                }
                next += 1;
            }
            if write_result.is_err() {
                break;
            }
        }
        drop(done_rx);
        write_result?;
        match reader.join() {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("the input reader failed"),
        }
        Ok(all_ok)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_input_order_on_many_threads() {
        let input: String = (0..10_000).map(|i| format!("{i}\n")).collect();
        for jobs in [1, 2, 7] {
            let mut out = Vec::new();
            let ok = run(input.as_bytes(), &mut out, jobs, 100, |batch, text| {
                for l in batch.lines() {
                    if let BatchLine::Token(t) = l {
                        text.push_str(std::str::from_utf8(t).expect("utf8"));
                        text.push('\n');
                    }
                }
                true
            })
            .expect("run");
            assert!(ok);
            assert_eq!(String::from_utf8(out).expect("utf8"), input, "jobs={jobs}");
        }
    }
}
