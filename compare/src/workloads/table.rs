//! The results as text for a terminal: a table whose lines fit in [`WIDTH`] columns, and the line
//! wrapping everything else the harness prints goes through.

use super::{Row, format_ratio};

/// The widest line the harness prints, on stdout and on stderr.
pub const WIDTH: usize = 100;

/// What the last column means, printed under the table.
pub const BETTER: &str = "hilos better: how many times better hilos's figure is than std's (less \
                          time or memory, more requests or threads); above 1 favours hilos.";

const HEADER: [&str; 5] = ["workload", "case", "hilos", "std", "hilos better"];
/// The widest each column may be: a longer cell wraps within its column. With two spaces between
/// columns they add up to at most [`WIDTH`].
const MAX: [usize; 5] = [8, 38, 17, 17, 12];
const GAP: &str = "  ";
const _: () = assert!(MAX[0] + MAX[1] + MAX[2] + MAX[3] + MAX[4] + 4 * GAP.len() <= WIDTH);

/// `text` in lines of at most `width` characters, broken at spaces (a word longer than a line is
/// cut). Always at least one line.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for mut word in text.split_whitespace() {
        loop {
            let (lw, ww) = (line.chars().count(), word.chars().count());
            if lw == 0 && ww <= width {
                line.push_str(word);
            } else if lw > 0 && lw + 1 + ww <= width {
                line.push(' ');
                line.push_str(word);
            } else if lw > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            } else {
                let cut = word
                    .char_indices()
                    .nth(width)
                    .map_or(word.len(), |(i, _)| i);
                lines.push(word[..cut].to_string());
                word = &word[cut..];
                continue;
            }
            break;
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// `prefix` and `text` as lines of at most [`WIDTH`] characters: the text wraps, its later lines
/// indented by `indent` spaces. No newline at the end.
pub fn wrapped(prefix: &str, text: &str, indent: usize) -> String {
    let width = WIDTH - prefix.chars().count().max(indent);
    let lines = wrap(text, width);
    let mut out = format!("{prefix}{}", lines[0]);
    for l in &lines[1..] {
        out.push('\n');
        out.push_str(&" ".repeat(indent));
        out.push_str(l);
    }
    out
}

/// A plain-text table of `rows` for a terminal: columns aligned, figures right-aligned, each
/// row's note on lines under it; no line longer than [`WIDTH`].
pub fn text_table(rows: &[Row]) -> String {
    let cells: Vec<[String; 5]> = rows.iter().map(row_cells).collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    for (w, max) in widths.iter_mut().zip(MAX) {
        *w = (*w).min(max);
    }
    let mut out = String::new();
    push_row(&mut out, &widths, &HEADER.map(String::from));
    push_row(&mut out, &widths, &widths.map(|w| "-".repeat(w)));
    let indent = widths[0] + GAP.len();
    for (r, c) in rows.iter().zip(&cells) {
        push_row(&mut out, &widths, c);
        if !r.note.is_empty() {
            for l in wrap(&r.note, WIDTH - indent) {
                out.push_str(&" ".repeat(indent));
                out.push_str(&l);
                out.push('\n');
            }
        }
    }
    out
}

/// One row of cells, each wrapped within its column's width.
fn push_row(out: &mut String, widths: &[usize; 5], cells: &[String; 5]) {
    let wrapped: Vec<Vec<String>> = cells.iter().zip(widths).map(|(c, &w)| wrap(c, w)).collect();
    let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
    for i in 0..height {
        let mut l = String::new();
        for (col, (lines, &w)) in wrapped.iter().zip(widths).enumerate() {
            let s = lines.get(i).map_or("", String::as_str);
            let pad = " ".repeat(w.saturating_sub(s.chars().count()));
            if col > 0 {
                l.push_str(GAP);
            }
            if col >= 2 {
                l.push_str(&pad);
                l.push_str(s);
            } else {
                l.push_str(s);
                l.push_str(&pad);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
}

/// The cells of a row for a table: workload, case, hilos, std, how many times better hilos is.
pub fn row_cells(r: &Row) -> [String; 5] {
    [
        r.workload.to_string(),
        r.case.clone(),
        r.hilos.display(r.metric),
        r.std.display(r.metric),
        r.ratio().map_or(String::new(), format_ratio),
    ]
}
