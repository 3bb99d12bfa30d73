//! The three build contexts the bench measures, generated deterministically into a scratch
//! directory: the same bytes on every run and every machine (a fixed-seed generator, no clock).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// One generated context.
pub struct BenchContext {
    /// Short name, used in image names and the report.
    pub name: &'static str,
    /// What it is, for the report.
    pub description: String,
    /// The context directory (with its `Dockerfile`, which takes `ARG BASE`).
    pub dir: PathBuf,
}

/// How big the contexts are.
#[derive(Clone, Copy)]
pub struct Sizes {
    /// Files in the large COPY context.
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// RUN steps in the sequential context.
    pub runs: usize,
}

impl Sizes {
    /// The full bench: 20,000 files of about 200 MB, 40 RUN steps.
    pub const FULL: Sizes = Sizes {
        files: 20_000,
        bytes: 200 * 1024 * 1024,
        runs: 40,
    };
    /// `--quick`: a smoke run of the same shapes.
    pub const QUICK: Sizes = Sizes {
        files: 2_000,
        bytes: 20 * 1024 * 1024,
        runs: 10,
    };
}

/// Writes the three contexts under `dir`.
pub fn generate(dir: &Path, sizes: Sizes) -> Result<Vec<BenchContext>> {
    Ok(vec![
        multi_stage(&dir.join("multi-stage"))?,
        big_copy(&dir.join("big-copy"), sizes)?,
        run_chain(&dir.join("run-chain"), sizes.runs)?,
    ])
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Three stages: a build stage that transforms sources, an assets stage that packs files, and a
/// final stage that copies from both and runs once more.
fn multi_stage(dir: &Path) -> Result<BenchContext> {
    write(
        &dir.join("Dockerfile"),
        "ARG BASE\n\
         FROM ${BASE} AS build\n\
         WORKDIR /src\n\
         COPY src/ ./\n\
         RUN mkdir -p /out && for f in *.txt; do tr a-m n-z < \"$f\" > \"/out/$f\"; done\n\
         RUN cat /out/*.txt | wc -c > /out/total\n\
         \n\
         FROM ${BASE} AS assets\n\
         COPY assets/ /assets/\n\
         RUN tar -cf /assets.tar /assets\n\
         \n\
         FROM ${BASE}\n\
         WORKDIR /app\n\
         COPY --from=build /out/ ./\n\
         COPY --from=assets /assets.tar ./\n\
         RUN ls -l /app > /app/listing\n\
         CMD [\"cat\", \"/app/total\"]\n",
    )?;
    let mut random = SplitMix(1);
    for i in 0..20 {
        write(
            &dir.join(format!("src/file{i:02}.txt")),
            bytes(&mut random, 2_000 + i * 300),
        )?;
    }
    for i in 0..10 {
        write(
            &dir.join(format!("assets/asset{i}.bin")),
            bytes(&mut random, 50_000),
        )?;
    }
    Ok(BenchContext {
        name: "multi-stage",
        description: "3 stages, 3 COPY --from/COPY, 4 RUN, 30 small files".to_owned(),
        dir: dir.to_path_buf(),
    })
}

/// One COPY of many files of mixed sizes.
fn big_copy(dir: &Path, sizes: Sizes) -> Result<BenchContext> {
    write(
        &dir.join("Dockerfile"),
        "ARG BASE\nFROM ${BASE}\nCOPY data/ /data/\nCMD [\"du\", \"-s\", \"/data\"]\n",
    )?;
    let mut random = SplitMix(2);
    let weights = file_weights(&mut random, sizes.files);
    let total_weight: u64 = weights.iter().sum();
    let mut written = 0u64;
    for (i, weight) in weights.iter().enumerate() {
        let size = sizes.bytes * weight / total_weight.max(1);
        let path = dir.join(format!("data/d{:02}/e{}/f{i:05}.dat", i % 100, i % 7));
        write(&path, bytes(&mut random, usize::try_from(size)?))?;
        written += size;
    }
    Ok(BenchContext {
        name: "big-copy",
        description: format!(
            "1 COPY of {} files, {:.0} MB (mixed sizes)",
            sizes.files,
            mib(written)
        ),
        dir: dir.to_path_buf(),
    })
}

/// Relative sizes: mostly small files, some medium, a few large ones.
fn file_weights(random: &mut SplitMix, count: usize) -> Vec<u64> {
    (0..count)
        .map(|_| match random.next() % 100 {
            0..=79 => 1 + random.next() % 8,   // 80% small
            80..=97 => 8 + random.next() % 64, // 18% medium
            _ => 200 + random.next() % 600,    // 2% large
        })
        .collect()
}

/// `count` RUN steps, one after the other.
fn run_chain(dir: &Path, count: usize) -> Result<BenchContext> {
    let mut dockerfile = String::from("ARG BASE\nFROM ${BASE}\nRUN mkdir /steps\n");
    for i in 1..count {
        let _ = writeln!(
            dockerfile,
            "RUN echo step {i} > /steps/{i:02} && cat /steps/* | wc -l > /steps/count"
        );
    }
    write(&dir.join("Dockerfile"), dockerfile)?;
    Ok(BenchContext {
        name: "run-chain",
        description: format!("{count} sequential RUN steps"),
        dir: dir.to_path_buf(),
    })
}

/// Mebibytes, for display.
pub fn mib(bytes: u64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let bytes = bytes as f64;
    bytes / (1024.0 * 1024.0)
}

/// A small deterministic generator (SplitMix64): enough for test data, no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `len` bytes drawn from 32 symbols: about as compressible as source code (gzip roughly
/// halves it), so neither tool's compression is measured on all-random or all-zero data.
fn bytes(random: &mut SplitMix, len: usize) -> Vec<u8> {
    const SYMBOLS: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz \n{}()";
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let mut word = random.next();
        for _ in 0..12 {
            if out.len() == len {
                break;
            }
            out.push(SYMBOLS[usize::try_from(word & 31).unwrap_or(0)]);
            word >>= 5;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        let a = bytes(&mut SplitMix(7), 1000);
        let b = bytes(&mut SplitMix(7), 1000);
        assert_eq!(a, b);
        assert_eq!(a.len(), 1000);
        assert_ne!(a, bytes(&mut SplitMix(8), 1000));
    }

    #[test]
    fn weights_are_mixed() {
        let weights = file_weights(&mut SplitMix(2), 20_000);
        assert!(weights.iter().any(|w| *w < 8));
        assert!(weights.iter().any(|w| *w >= 200));
    }

    #[test]
    fn contexts_are_written() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-test-{}", std::process::id()));
        let sizes = Sizes {
            files: 50,
            bytes: 100_000,
            runs: 3,
        };
        let contexts = generate(&dir, sizes).unwrap();
        assert_eq!(contexts.len(), 3);
        for context in &contexts {
            assert!(context.dir.join("Dockerfile").is_file(), "{}", context.name);
        }
        let runs = std::fs::read_to_string(dir.join("run-chain/Dockerfile")).unwrap();
        assert_eq!(runs.matches("\nRUN ").count(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
