//! What a file is, told from its first bytes. Contract section 6 decides types from the bytes,
//! not from the client's `Content-Type`: a declared type is only a hint, used where the bytes
//! alone cannot choose between formats that share a container (an MP4 holding only audio, an
//! OLE or OOXML office file whose kind is stored past the first chunk). An HTML page named
//! `avatar.png` is therefore refused, and a JPEG declared as `image/png` is stored as JPEG.

use crate::mode::Mode;

/// How many leading bytes [`sniff`] looks at: enough for an OOXML file's first zip entries
/// and an OLE file's first directory sector, small enough to hold in memory per request.
pub const SNIFF_BYTES: usize = 64 * 1024;

/// A file format this service recognizes from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Png,
    Webp,
    Ico,
    /// ISO base media (MP4) with one of MP4's own brands (isom, mp42, avc1, ...).
    Mp4,
    /// ISO base media with an audio brand (M4A), or an MP4 the client declared as audio.
    Mp4Audio,
    ThreeGpp,
    Aac,
    Amr,
    Mp3,
    Ogg,
    Pdf,
    Doc,
    Xls,
    Ppt,
    Docx,
    Xlsx,
    Pptx,
    /// UTF-8 text that is not markup: a CSV import, or a plain-text document.
    Text,
}

/// What the client said about the file, for the formats the bytes leave open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hint<'a> {
    /// The part's declared content type.
    pub declared: Option<&'a str>,
    /// The part's file name, for its extension.
    pub file_name: &'a str,
}

impl Hint<'_> {
    /// The formats the declaration and the extension name, in that order.
    fn formats(&self) -> impl Iterator<Item = Format> + '_ {
        let declared = self.declared.and_then(Format::from_content_type);
        let extension = self
            .file_name
            .rsplit_once('.')
            .and_then(|(_, ext)| Format::from_extension(ext));
        declared.into_iter().chain(extension)
    }

    /// The first hinted format among `candidates`.
    fn pick(&self, candidates: &[Format]) -> Option<Format> {
        self.formats().find(|f| candidates.contains(f))
    }
}

impl Format {
    /// The content type stored for a file of this format uploaded in `mode`: UTF-8 text is a
    /// CSV in an import and a plain-text document elsewhere (WhatsApp takes `text/plain`).
    pub const fn content_type(self, mode: Mode) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
            Format::Ico => "image/vnd.microsoft.icon",
            Format::Mp4 => "video/mp4",
            Format::Mp4Audio => "audio/mp4",
            Format::ThreeGpp => "video/3gpp",
            Format::Aac => "audio/aac",
            Format::Amr => "audio/amr",
            Format::Mp3 => "audio/mpeg",
            Format::Ogg => "audio/ogg",
            Format::Pdf => "application/pdf",
            Format::Doc => "application/msword",
            Format::Xls => "application/vnd.ms-excel",
            Format::Ppt => "application/vnd.ms-powerpoint",
            Format::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Pptx => {
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            }
            Format::Text => match mode {
                Mode::Import => "text/csv",
                _ => "text/plain",
            },
        }
    }

    /// A name for messages ("a PDF document").
    pub const fn describe(self) -> &'static str {
        match self {
            Format::Jpeg => "a JPEG image",
            Format::Png => "a PNG image",
            Format::Webp => "a WebP image",
            Format::Ico => "an ICO icon",
            Format::Mp4 => "an MP4 video",
            Format::Mp4Audio => "MP4 audio",
            Format::ThreeGpp => "a 3GPP video",
            Format::Aac => "AAC audio",
            Format::Amr => "AMR audio",
            Format::Mp3 => "MP3 audio",
            Format::Ogg => "Ogg audio",
            Format::Pdf => "a PDF document",
            Format::Doc => "a Word 97-2003 document",
            Format::Xls => "an Excel 97-2003 workbook",
            Format::Ppt => "a PowerPoint 97-2003 presentation",
            Format::Docx => "a Word document",
            Format::Xlsx => "an Excel workbook",
            Format::Pptx => "a PowerPoint presentation",
            Format::Text => "UTF-8 text",
        }
    }

    /// The format a stored or declared content type names (parameters and case ignored).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        Some(match crate::media::essence(content_type).as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Format::Jpeg,
            "image/png" => Format::Png,
            "image/webp" => Format::Webp,
            "image/vnd.microsoft.icon" | "image/x-icon" => Format::Ico,
            "video/mp4" => Format::Mp4,
            "audio/mp4" | "audio/m4a" | "audio/x-m4a" => Format::Mp4Audio,
            "video/3gpp" => Format::ThreeGpp,
            "audio/aac" | "audio/x-aac" => Format::Aac,
            "audio/amr" => Format::Amr,
            "audio/mpeg" | "audio/mp3" => Format::Mp3,
            "audio/ogg" | "audio/opus" => Format::Ogg,
            "application/pdf" => Format::Pdf,
            "application/msword" => Format::Doc,
            "application/vnd.ms-excel" => Format::Xls,
            "application/vnd.ms-powerpoint" => Format::Ppt,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                Format::Docx
            }
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => Format::Xlsx,
            "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
                Format::Pptx
            }
            "text/plain" | "text/csv" => Format::Text,
            _ => return None,
        })
    }

    /// The format a file name's extension usually means (case ignored).
    pub fn from_extension(extension: &str) -> Option<Self> {
        Some(match extension.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" | "jpe" => Format::Jpeg,
            "png" => Format::Png,
            "webp" => Format::Webp,
            "ico" => Format::Ico,
            "mp4" | "m4v" => Format::Mp4,
            "m4a" => Format::Mp4Audio,
            "3gp" | "3gpp" => Format::ThreeGpp,
            "aac" => Format::Aac,
            "amr" => Format::Amr,
            "mp3" => Format::Mp3,
            "ogg" | "oga" | "opus" => Format::Ogg,
            "pdf" => Format::Pdf,
            "doc" => Format::Doc,
            "xls" => Format::Xls,
            "ppt" => Format::Ppt,
            "docx" => Format::Docx,
            "xlsx" => Format::Xlsx,
            "pptx" => Format::Pptx,
            "txt" | "csv" => Format::Text,
            _ => return None,
        })
    }
}

/// The format of a file whose first bytes are `prefix` (up to [`SNIFF_BYTES`] of them, fewer
/// when the first chunk is shorter), or `None` when it is none this service recognizes.
pub fn sniff(prefix: &[u8], hint: Hint<'_>) -> Option<Format> {
    let b = prefix;
    if infer::image::is_jpeg(b) {
        return Some(Format::Jpeg);
    }
    if infer::image::is_png(b) {
        return Some(Format::Png);
    }
    if b.starts_with(b"RIFF") && infer::image::is_webp(b) {
        return Some(Format::Webp);
    }
    if is_ico(b) {
        return Some(Format::Ico);
    }
    if let Some(format) = iso_media(b, hint) {
        return Some(format);
    }
    if infer::audio::is_amr(b) {
        return Some(Format::Amr);
    }
    if infer::audio::is_aac(b) {
        return Some(Format::Aac);
    }
    if infer::audio::is_mp3(b) {
        return Some(Format::Mp3);
    }
    if infer::audio::is_ogg(b) {
        return Some(Format::Ogg);
    }
    // Readers accept a header anywhere in the first KiB; a file that starts elsewhere is rare
    // and would let text that merely mentions `%PDF-` pass as a document.
    if b.starts_with(b"%PDF-") {
        return Some(Format::Pdf);
    }
    if b.starts_with(&OLE_MAGIC) {
        return ole_kind(b).or_else(|| hint.pick(&[Format::Doc, Format::Xls, Format::Ppt]));
    }
    if b.starts_with(b"PK\x03\x04") {
        return ooxml_kind(b, hint);
    }
    is_text(b).then_some(Format::Text)
}

/// An ICO header: reserved 0, type 1, at least one image, and a first entry whose reserved
/// byte is 0 (the bare four-byte magic is too weak: it begins many binary files).
fn is_ico(b: &[u8]) -> bool {
    b.len() >= 22
        && infer::image::is_ico(b)
        && u16::from_le_bytes([b[4], b[5]]) > 0
        && b[6 + 3] == 0
}

/// ISO base media (`ftyp` box at offset 4): the major brand tells 3GPP and M4A from MP4; an
/// MP4 with a generic brand that the client declared as audio is audio.
fn iso_media(b: &[u8], hint: Hint<'_>) -> Option<Format> {
    if b.len() < 12 || &b[4..8] != b"ftyp" {
        return None;
    }
    let brand = &b[8..12];
    if brand.starts_with(b"3gp")
        || brand.starts_with(b"3gg")
        || brand.starts_with(b"3gs")
        || brand.starts_with(b"3ge")
        || brand.starts_with(b"3gr")
    {
        return Some(Format::ThreeGpp);
    }
    if brand.starts_with(b"3g2") || brand == b"qt  " || brand.starts_with(b"hei") {
        // 3GPP2, QuickTime and HEIF share the box structure but are none of ours.
        return None;
    }
    if matches!(brand, b"M4A " | b"M4B " | b"M4P ") {
        return Some(Format::Mp4Audio);
    }
    // MP4's own brands; others (AVIF, HEIF sequences, CRX, ...) share the boxes but are not
    // MP4 media Meta would play.
    const MP4_BRANDS: [&[u8; 4]; 19] = [
        b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso8", b"iso9", b"mp41", b"mp42",
        b"avc1", b"M4V ", b"M4VH", b"M4VP", b"dash", b"MSNV", b"f4v ", b"mmp4", b"XAVC",
    ];
    if !MP4_BRANDS.iter().any(|b| *b == brand) {
        return None;
    }
    Some(hint.pick(&[Format::Mp4Audio]).unwrap_or(Format::Mp4))
}

const OLE_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// The kind of a legacy Office file (an OLE compound file), from the root entry's class id or
/// the stream names of the first directory sector, when that sector is within `b`.
fn ole_kind(b: &[u8]) -> Option<Format> {
    let shift = u16::from_le_bytes([*b.get(0x1E)?, *b.get(0x1F)?]);
    let sector = match shift {
        9 => 512usize,
        12 => 4096,
        _ => return None,
    };
    let first_dir = u32::from_le_bytes(b.get(0x30..0x34)?.try_into().ok()?);
    let start = (usize::try_from(first_dir).ok()?.checked_add(1)?).checked_mul(sector)?;
    let end = start.checked_add(sector)?.min(b.len());
    let dir = b.get(start..end)?;
    let mut entries = dir.chunks_exact(128);
    let root = entries.next()?;
    let by_class = match &root[0x50..0x60] {
        [
            0x06,
            0x09,
            0x02,
            0x00,
            0,
            0,
            0,
            0,
            0xC0,
            0,
            0,
            0,
            0,
            0,
            0,
            0x46,
        ] => Some(Format::Doc),
        [
            0x10 | 0x20,
            0x08,
            0x02,
            0x00,
            0,
            0,
            0,
            0,
            0xC0,
            0,
            0,
            0,
            0,
            0,
            0,
            0x46,
        ] => Some(Format::Xls),
        [
            0x10,
            0x8D,
            0x81,
            0x64,
            0x9B,
            0x4F,
            0xCF,
            0x11,
            0x86,
            0xEA,
            0x00,
            0xAA,
            0x00,
            0xB9,
            0x29,
            0xE8,
        ] => Some(Format::Ppt),
        _ => None,
    };
    by_class.or_else(|| {
        entries.find_map(|entry| match entry_name(entry)?.as_str() {
            "WordDocument" => Some(Format::Doc),
            "Workbook" | "Book" => Some(Format::Xls),
            "PowerPoint Document" => Some(Format::Ppt),
            _ => None,
        })
    })
}

/// A directory entry's name: UTF-16LE, its length in bytes (with the final NUL) at 0x40.
fn entry_name(entry: &[u8]) -> Option<String> {
    let len = usize::from(u16::from_le_bytes([entry[0x40], entry[0x41]]));
    if !(2..=64).contains(&len) {
        return None;
    }
    let units: Vec<u16> = entry[..len - 2]
        .chunks_exact(2)
        .map(|u| u16::from_le_bytes([u[0], u[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

/// An OOXML file (a zip whose entries name `word/`, `xl/` or `ppt/`); a zip that is an Office
/// package of a kind the first entries do not show takes the hinted kind.
fn ooxml_kind(b: &[u8], hint: Hint<'_>) -> Option<Format> {
    if infer::doc::is_docx(b) {
        return Some(Format::Docx);
    }
    if infer::doc::is_xlsx(b) {
        return Some(Format::Xlsx);
    }
    if infer::doc::is_pptx(b) {
        return Some(Format::Pptx);
    }
    let names_content_types = b
        .windows(b"[Content_Types].xml".len())
        .any(|w| w == b"[Content_Types].xml");
    names_content_types
        .then(|| hint.pick(&[Format::Docx, Format::Xlsx, Format::Pptx]))
        .flatten()
}

/// UTF-8 text, an optional byte-order mark first, with no control characters but tab, line
/// breaks and form feed, whose first visible character is not `<` (markup, such as HTML or
/// SVG, is not accepted as text). A character cut by the end of `b` is allowed: the first
/// chunk can end anywhere.
fn is_text(b: &[u8]) -> bool {
    let b = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
    let text = match std::str::from_utf8(b) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => {
            // Checked valid just above, up to `valid_up_to`.
            std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    let controls_ok = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0C'));
    let markup = text
        .trim_start_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}')
        .starts_with('<');
    controls_ok && !markup
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(b: &[u8]) -> Option<Format> {
        sniff(b, Hint::default())
    }

    fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0x18];
        b.extend_from_slice(b"ftyp");
        b.extend_from_slice(brand);
        b.extend_from_slice(&[0; 12]);
        b
    }

    /// An OLE header with 512-byte sectors whose first directory sector is sector 0 (offset
    /// 512), holding a root entry with `class` and one stream named `stream`.
    fn ole(class: [u8; 16], stream: &str) -> Vec<u8> {
        let mut b = vec![0u8; 512 + 512];
        b[..8].copy_from_slice(&OLE_MAGIC);
        b[0x1E..0x20].copy_from_slice(&9u16.to_le_bytes());
        b[0x30..0x34].copy_from_slice(&0u32.to_le_bytes());
        let root = &mut b[512..640];
        root[0x50..0x60].copy_from_slice(&class);
        let entry = &mut b[640..768];
        let name: Vec<u8> = stream.encode_utf16().flat_map(u16::to_le_bytes).collect();
        entry[..name.len()].copy_from_slice(&name);
        entry[0x40..0x42].copy_from_slice(&(name.len() as u16 + 2).to_le_bytes());
        b
    }

    #[test]
    fn images_are_told_by_their_magic_numbers() {
        assert_eq!(plain(b"\xFF\xD8\xFF\xE0\0\x10JFIF"), Some(Format::Jpeg));
        assert_eq!(plain(b"\x89PNG\r\n\x1A\n\0\0\0\rIHDR"), Some(Format::Png));
        assert_eq!(plain(b"RIFF\x10\0\0\0WEBPVP8 "), Some(Format::Webp));
        // A WAV file is RIFF too, and not WebP.
        assert_eq!(plain(b"RIFF\x10\0\0\0WAVEfmt "), None);
        let mut ico = vec![0, 0, 1, 0, 1, 0, 16, 16, 0, 0, 1, 0, 32, 0];
        ico.extend_from_slice(&[0; 8]);
        assert_eq!(plain(&ico), Some(Format::Ico));
        // The bare magic, without a plausible directory, is not an icon.
        assert_eq!(plain(&[0, 0, 1, 0, 0, 0, 1, 2, 3]), None);
    }

    #[test]
    fn iso_media_brands_decide_video_audio_and_3gpp() {
        assert_eq!(plain(&ftyp(b"isom")), Some(Format::Mp4));
        assert_eq!(plain(&ftyp(b"mp42")), Some(Format::Mp4));
        assert_eq!(plain(&ftyp(b"M4A ")), Some(Format::Mp4Audio));
        assert_eq!(plain(&ftyp(b"3gp5")), Some(Format::ThreeGpp));
        assert_eq!(plain(&ftyp(b"qt  ")), None);
        assert_eq!(plain(&ftyp(b"heic")), None);
        assert_eq!(plain(&ftyp(b"avif")), None);
        assert_eq!(plain(&ftyp(b"crx ")), None);
        let audio = Hint {
            declared: Some("audio/mp4"),
            file_name: "voice.mp4",
        };
        assert_eq!(sniff(&ftyp(b"isom"), audio), Some(Format::Mp4Audio));
        let named = Hint {
            declared: None,
            file_name: "voice.M4A",
        };
        assert_eq!(sniff(&ftyp(b"mp42"), named), Some(Format::Mp4Audio));
    }

    #[test]
    fn audio_formats_are_recognized() {
        assert_eq!(plain(b"#!AMR\n\x3C\x91\x17\x16\xBE\x66"), Some(Format::Amr));
        assert_eq!(plain(b"\xFF\xF1\x50\x80"), Some(Format::Aac));
        assert_eq!(plain(b"ID3\x04\0\0\0\0\0\0"), Some(Format::Mp3));
        assert_eq!(plain(b"\xFF\xFB\x90\x44"), Some(Format::Mp3));
        assert_eq!(plain(b"OggS\0\x02\0\0"), Some(Format::Ogg));
    }

    #[test]
    fn pdf_must_start_with_its_header() {
        assert_eq!(plain(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n"), Some(Format::Pdf));
        // Text that mentions a PDF header later is text.
        assert_eq!(plain(b"name,note\nx,%PDF-1.4\n"), Some(Format::Text));
    }

    #[test]
    fn legacy_office_files_are_told_by_class_id_or_stream_name() {
        let word = [
            0x06, 0x09, 0x02, 0x00, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46,
        ];
        assert_eq!(plain(&ole(word, "1Table")), Some(Format::Doc));
        assert_eq!(plain(&ole([0; 16], "Workbook")), Some(Format::Xls));
        assert_eq!(
            plain(&ole([0; 16], "PowerPoint Document")),
            Some(Format::Ppt)
        );
        // The directory lies past the first chunk: the declaration decides among the three.
        let cut = &ole([0; 16], "Workbook")[..512];
        assert_eq!(plain(cut), None);
        let declared = Hint {
            declared: Some("application/vnd.ms-powerpoint"),
            file_name: "deck.bin",
        };
        assert_eq!(sniff(cut, declared), Some(Format::Ppt));
        let named_otherwise = Hint {
            declared: None,
            file_name: "photo.jpg",
        };
        assert_eq!(sniff(cut, named_otherwise), None);
    }

    #[test]
    fn office_open_xml_is_told_by_its_first_entries() {
        let mut docx = b"PK\x03\x04".to_vec();
        docx.extend_from_slice(&[0; 26]);
        docx.extend_from_slice(b"word/document.xml");
        assert_eq!(plain(&docx), Some(Format::Docx));
        let mut package = b"PK\x03\x04".to_vec();
        package.extend_from_slice(&[0; 26]);
        package.extend_from_slice(b"[Content_Types].xml");
        package.extend_from_slice(&[0; 64]);
        let hinted = Hint {
            declared: None,
            file_name: "sheet.xlsx",
        };
        assert_eq!(sniff(&package, hinted), Some(Format::Xlsx));
        // A plain zip is no document, whatever it is called.
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend_from_slice(&[0; 26]);
        zip.extend_from_slice(b"evil.exe");
        assert_eq!(sniff(&zip, hinted), None);
    }

    #[test]
    fn text_is_utf8_without_controls_or_markup() {
        assert_eq!(plain(b"name,phone\r\nAda,+44\r\n"), Some(Format::Text));
        assert_eq!(
            plain("\u{FEFF}nombre,teléfono\n".as_bytes()),
            Some(Format::Text)
        );
        // A character cut by the end of the first chunk.
        let cut = "añ".as_bytes();
        assert_eq!(plain(&cut[..2]), Some(Format::Text));
        assert_eq!(plain(b"a,b\n\x00\x01"), None);
        assert_eq!(plain(b"caf\xE9,latin1\n"), None);
        assert_eq!(plain(b"  <html><script>alert(1)</script>"), None);
        assert_eq!(plain(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), None);
        assert_eq!(plain("\u{FEFF}\u{FEFF} <html>".as_bytes()), None);
    }

    #[test]
    fn text_is_a_csv_in_imports_and_plain_text_elsewhere() {
        assert_eq!(Format::Text.content_type(Mode::Import), "text/csv");
        assert_eq!(Format::Text.content_type(Mode::Message), "text/plain");
        for format in [Format::Pdf, Format::Mp4Audio, Format::Ico, Format::Xlsx] {
            assert_eq!(
                Format::from_content_type(format.content_type(Mode::Message)),
                Some(format)
            );
        }
        assert_eq!(
            Format::from_content_type("Image/JPG; q=1"),
            Some(Format::Jpeg)
        );
        assert_eq!(Format::from_content_type("text/html"), None);
    }

    #[test]
    fn sniffing_never_panics_on_short_or_odd_input() {
        for len in 1..600 {
            assert_eq!(plain(&vec![0u8; len]), None, "{len} zeros");
            let mut ole_head = OLE_MAGIC.to_vec();
            ole_head.resize(len.max(8), 0xFF);
            assert_eq!(plain(&ole_head), None, "OLE header of {len}");
            let mut zip = b"PK\x03\x04".to_vec();
            zip.resize(len.max(4), 0xFF);
            assert_eq!(plain(&zip), None, "zip header of {len}");
        }
    }
}
