//! `diagram`: the drawings of the machine written into a directory, or one of them on stdout.
//!
//! Owns where the files go (each through a temp file renamed into place), running Graphviz for the
//! SVG and what the command prints. It must not draw anything itself: `crate::diagram` does.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use crate::doc::Doc;

use super::args::{DiagramArgs, Format};
use super::{CliError, Context, printable, warn};
use crate::diagram;

/// `diagram`: writes the drawings of the machine and prints the files written.
pub(super) fn run(ctx: &Context, args: &DiagramArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if args.out == Path::new("-") {
        return diagram_to_stdout(ctx, args.format.unwrap_or(Format::Dot), out);
    }
    let formats = match args.format {
        Some(format) => vec![format],
        None => vec![Format::Dot, Format::Mermaid, Format::Svg],
    };
    fs::create_dir_all(&args.out)
        .map_err(|source| CliError::Write { path: args.out.clone(), source })?;
    let mut written = Vec::new();
    for format in formats {
        let (name, text) = match format {
            Format::Dot => ("lifecycle.dot", diagram::to_dot().into_bytes()),
            Format::Mermaid => ("lifecycle.mmd", diagram::to_mermaid().into_bytes()),
            Format::Svg => {
                let path = args.out.join("lifecycle.svg");
                match render_svg(&diagram::to_dot()) {
                    Ok(svg) => ("lifecycle.svg", svg),
                    Err(e) if e.kind() == io::ErrorKind::NotFound && args.format.is_none() => {
                        warn("Graphviz `dot` is not on PATH: lifecycle.svg not written");
                        continue;
                    }
                    Err(e) => return Err(CliError::Graphviz { path, reason: e.to_string() }),
                }
            }
        };
        let path = args.out.join(name);
        replace_file(&args.out, &path, &text)
            .map_err(|source| CliError::Write { path: path.clone(), source })?;
        written.push(path.display().to_string());
    }
    ctx.print(out, &Doc::ok(true).with("files", &written), |_| {
        written.iter().map(|path| format!("{}\n", printable(path))).collect()
    })
}

/// `diagram --out -`: the one format on standard output, which `--json` would garble.
fn diagram_to_stdout(ctx: &Context, format: Format, out: &mut dyn Write) -> Result<(), CliError> {
    if ctx.json {
        return Err(CliError::Usage(
            "--json cannot be used with `diagram --out -`, which prints the drawing itself"
                .to_owned(),
        ));
    }
    let text = match format {
        Format::Dot => diagram::to_dot().into_bytes(),
        Format::Mermaid => diagram::to_mermaid().into_bytes(),
        Format::Svg => render_svg(&diagram::to_dot())
            .map_err(|e| CliError::Graphviz { path: PathBuf::from("-"), reason: e.to_string() })?,
    };
    out.write_all(&text).map_err(CliError::Stdout)
}

/// Writes `path` (in `dir`) as a new file, mode 0644, through a temp file in `dir` renamed over it:
/// whatever was at `path` (a symbolic link included) is replaced, never followed or written into.
fn replace_file(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut temp = tempfile::Builder::new().prefix(".diagram").suffix(".tmp").tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().set_permissions(fs::Permissions::from_mode(0o644))?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Runs `dot -Tsvg` on the DOT text. `NotFound` when Graphviz is not installed.
fn render_svg(dot: &str) -> io::Result<Vec<u8>> {
    let mut child = Process::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(io::Error::other(format!("{} ({})", stderr.trim(), output.status)))
    }
}
