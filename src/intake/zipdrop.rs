//! A dropped `.zip`: checked entry by entry, and its headers against each
//! other, before a byte is extracted.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::application::{Reason, ReasonCode, Rejection};
use crate::types::printable;

/// Checks a dropped zip and extracts it into `dest` (a new folder), refusing
/// hostile archives before a byte is written. Returns the application folder:
/// `dest` itself, or the single top-level folder the zip contains.
pub(super) fn extract_zip(
    zip_path: &Path,
    dest: &Path,
    limits: &crate::config::Limits,
    name: &str,
) -> Result<PathBuf, Rejection> {
    use ReasonCode as C;
    let reject = |code, zh: String, en: String| Rejection {
        reasons: vec![Reason::new(code, Some(name), zh, en)],
    };
    let bomb = |why: &str| {
        reject(
            C::ZipBomb,
            format!("压缩包异常（{why}），可能是“压缩炸弹”，已拒收。请直接放入文件夹。"),
            format!("The zip is abnormal ({why}) and may be a decompression bomb. Drop a plain folder instead."),
        )
    };
    let file = crate::fsutil::open_regular_nofollow(zip_path).map_err(|e| {
        reject(
            C::Unreadable,
            format!("无法读取（{}）。", crate::application::zh_io(&e)),
            format!("Cannot be read ({e})."),
        )
    })?;
    let compressed_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut z = zip::ZipArchive::new(&file).map_err(|e| {
        reject(
            C::ZipInvalid,
            "不是有效的 zip 压缩包（压缩包结构无法识别，可能已损坏或复制不完整）。请重新压缩，或直接放入文件夹。".to_owned(),
            format!("Not a valid zip archive ({e}). Zip it again, or drop a plain folder."),
        )
    })?;
    if z.has_duplicate_names() {
        return Err(reject(
            C::ZipDuplicateEntry,
            "压缩包里有重名的文件。".into(),
            "The zip contains two entries with the same name.".into(),
        ));
    }
    let max_entries = limits.max_documents + 8;
    if z.len() > max_entries {
        return Err(bomb(&format!("{} entries", z.len())));
    }
    let prefix = crate::zipcheck::prefix_len(&z);
    if prefix > 0 {
        return Err(reject(
            C::ZipLeadingData,
            format!("压缩包的第一个文件之前还有 {prefix} 字节的其他数据（例如自解压程序）。请用普通的 zip 压缩，或直接放入文件夹。"),
            format!("The zip has {prefix} bytes of something else before its first entry (a self-extracting archive, for example). Make a plain zip, or drop a plain folder."),
        ));
    }
    // Every tool must read the same files from it: local headers agree with
    // the central directory (the directory is what is checked below).
    if let Err(e) = crate::zipcheck::check_local_headers(&z, &mut &file) {
        return Err(match e {
            crate::zipcheck::ZipCheckError::Io(e) => reject(
                C::Unreadable,
                format!("无法读取（{}）。", crate::application::zh_io(&e)),
                format!("Cannot be read ({e})."),
            ),
            crate::zipcheck::ZipCheckError::Mismatch { entry, field, .. } => reject(
                C::ZipHeaderMismatch,
                format!("压缩包里 “{}” 的文件头前后不一致（{field}），不同的软件会解出不同的内容。请重新压缩，或直接放入文件夹。", printable(&entry)),
                format!("In the zip, the headers of \"{}\" disagree ({field}), so different tools would extract different files. Zip it again, or drop a plain folder.", printable(&entry)),
            ),
            other => reject(
                C::ZipInvalid,
                "压缩包已损坏（结构无法读取，可能复制不完整）。".to_owned(),
                format!("The zip is damaged ({}).", printable(&other.to_string())),
            ),
        });
    }
    // Pass 1: names, types, declared sizes, overlap. Nothing written yet.
    let mut declared_total: u64 = 0;
    let mut ranges = Vec::new();
    let mut plan = Vec::new();
    let mut top_dirs = std::collections::BTreeSet::new();
    for i in 0..z.len() {
        let f = z.by_index_raw(i).map_err(|e| {
            reject(
                C::ZipInvalid,
                "压缩包已损坏（结构无法读取，可能复制不完整）。".to_owned(),
                format!("The zip is damaged ({e})."),
            )
        })?;
        let raw = f.name_raw().to_vec();
        let entry = String::from_utf8(raw).map_err(|_| {
            reject(C::ZipUnsafeEntry, "压缩包里的文件名不是 UTF-8 编码。请用支持 UTF-8 的工具重新压缩。".into(), "An entry name in the zip is not UTF-8. Zip it again with a tool that writes UTF-8 names.".into())
        })?;
        if entry.starts_with("__MACOSX/") {
            continue; // resource forks that macOS Finder adds to every zip: not content
        }
        let unsafe_name = entry.is_empty()
            || entry.trim_end_matches('/').split('/').any(str::is_empty)
            || entry.starts_with('/')
            || entry.contains('\\')
            || entry.as_bytes().get(1) == Some(&b':')
            || entry.split('/').any(|c| c == ".." || c == ".")
            || entry.chars().any(char::is_control);
        if unsafe_name {
            return Err(reject(
                C::ZipUnsafeEntry,
                format!("压缩包里的 “{}” 路径不安全（绝对路径、盘符、反斜杠或 ..）。", entry.escape_debug()),
                format!("The zip entry {entry:?} has an unsafe path (absolute, drive letter, backslash or ..)."),
            ));
        }
        if f.is_symlink() {
            return Err(reject(
                C::ZipSymlink,
                format!("压缩包里的 “{}” 是符号链接。", printable(&entry)),
                format!("The zip entry {entry:?} is a symbolic link."),
            ));
        }
        let parts: Vec<&str> = entry.trim_end_matches('/').split('/').collect();
        if parts.len() > 2 {
            return Err(reject(
                C::NotARegularFile,
                format!("压缩包里的 “{}” 嵌套过深。材料应直接放在压缩包（或其中一个文件夹）里。", printable(&entry)),
                format!("The zip entry {entry:?} is nested too deep; put documents at the top level (or in one folder)."),
            ));
        }
        if parts.len() == 2 || f.is_dir() {
            top_dirs.insert(parts[0].to_owned());
        }
        if f.is_dir() {
            continue;
        }
        let size = f.size();
        let csize = f.compressed_size().max(1);
        if size
            > limits
                .max_document_size
                .max(crate::application::MAX_MANIFEST_BYTES)
        {
            return Err(bomb(&format!("{entry} would expand to {size} bytes")));
        }
        if size / csize > 200 && size > 1 << 20 {
            return Err(bomb(&format!("{entry} expands {}-fold", size / csize)));
        }
        declared_total = declared_total.saturating_add(size);
        if let Some(start) = f.data_start() {
            ranges.push((start, start + f.compressed_size(), entry.clone()));
        }
        plan.push((i, entry, size));
    }
    if declared_total > limits.max_total_size + crate::application::MAX_MANIFEST_BYTES {
        return Err(bomb(&format!("{declared_total} bytes in total")));
    }
    if declared_total > compressed_len.saturating_mul(1000).max(64 << 20) {
        return Err(bomb("compression ratio over 1000:1"));
    }
    ranges.sort();
    if ranges.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(bomb("entries overlap each other"));
    }
    if top_dirs.len() > 1 || (top_dirs.len() == 1 && plan.iter().any(|(_, e, _)| !e.contains('/')))
    {
        return Err(reject(
            C::NotARegularFile,
            "压缩包里有多个文件夹，或文件夹外还有文件。一个压缩包只能装一份申请。".into(),
            "The zip holds several folders, or files beside a folder. One zip holds one application.".into(),
        ));
    }
    // Pass 2: extract with hard caps (declared sizes may lie) and a time budget.
    let started = Instant::now();
    let budget = Duration::from_secs(60);
    let io_fail = |e: io::Error| {
        reject(
            C::Unreadable,
            format!("无法解压（{}）。", crate::application::zh_io(&e)),
            format!("Cannot extract ({e})."),
        )
    };
    fs::create_dir(dest).map_err(io_fail)?;
    for (i, entry, size) in plan {
        let target = dest.join(&entry);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_fail)?;
        }
        let mut f = z.by_index(i).map_err(|e| {
            reject(
                C::ZipInvalid,
                "压缩包已损坏（结构无法读取，可能复制不完整）。".to_owned(),
                format!("The zip is damaged ({e})."),
            )
        })?;
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags_nofollow()
            .open(&target)
            .map_err(io_fail)?;
        let mut limited = (&mut f).take(size + 1);
        let mut buf = vec![0u8; 64 * 1024];
        let mut written: u64 = 0;
        loop {
            let n = limited.read(&mut buf).map_err(|e| {
                reject(
                    C::ZipInvalid,
                    "压缩包已损坏（结构无法读取，可能复制不完整）。".to_owned(),
                    format!("The zip is damaged ({e})."),
                )
            })?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > size {
                return Err(bomb(&format!("{entry} expands beyond its declared size")));
            }
            out.write_all(&buf[..n]).map_err(io_fail)?;
            if started.elapsed() > budget {
                return Err(bomb("extraction takes too long"));
            }
        }
    }
    Ok(match top_dirs.into_iter().next() {
        Some(top) => dest.join(top),
        None => dest.to_owned(),
    })
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}
impl NoFollow for fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW)
    }
}
