//! A chunk request as a test writes it: every field optional, so that each can be left out.

use reqwest::multipart::{Form, Part};

#[derive(Debug, Clone, Default)]
pub struct Chunk {
    pub data: Option<Vec<u8>>,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub block_index: Option<String>,
    pub total_blocks: Option<String>,
    pub mode: Option<String>,
    pub file_id: Option<String>,
    pub current_block: Option<String>,
    pub chunk_sha256: Option<String>,
    /// Sends the File part before the text fields (the server then buffers it) instead of
    /// last (the server then streams it to storage).
    pub file_first: bool,
    /// Text fields sent after the File part, as a careless client might.
    pub trailing: Vec<(String, String)>,
    /// More text fields sent with the others, before the File part (a second copy of one, say).
    pub extra: Vec<(String, String)>,
}

impl Chunk {
    /// A complete, valid chunk.
    pub fn new(data: &[u8], index: u32, total: u32, mode: &str) -> Self {
        Self {
            data: Some(data.to_vec()),
            file_name: Some("report.pdf".into()),
            content_type: Some("application/pdf".into()),
            block_index: Some(index.to_string()),
            total_blocks: Some(total.to_string()),
            mode: Some(mode.into()),
            ..Self::default()
        }
    }

    pub fn file_id(mut self, id: &str) -> Self {
        self.file_id = Some(id.into());
        self
    }

    /// Sends `ChunkSha256` with this value.
    pub fn sha256(mut self, hex: &str) -> Self {
        self.chunk_sha256 = Some(hex.into());
        self
    }

    pub fn file_first(mut self) -> Self {
        self.file_first = true;
        self
    }

    pub fn with_field(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    pub fn then_field(mut self, name: &str, value: &str) -> Self {
        self.trailing.push((name.into(), value.into()));
        self
    }

    pub fn into_form(self) -> Form {
        let mut form = Form::new();
        let file = self.data.map(|data| {
            let mut part =
                Part::bytes(data).file_name(self.file_name.unwrap_or_else(|| "blob".into()));
            if let Some(ct) = self.content_type {
                part = part.mime_str(&ct).expect("valid mime");
            }
            part
        });
        let mut file = file;
        if self.file_first
            && let Some(part) = file.take()
        {
            form = form.part("File", part);
        }
        for (name, value) in [
            ("BlockIndex", self.block_index),
            ("TotalBlocks", self.total_blocks),
            ("Mode", self.mode),
            ("FileId", self.file_id),
            ("CurrentBlock", self.current_block),
            ("ChunkSha256", self.chunk_sha256),
        ] {
            if let Some(v) = value {
                form = form.text(name, v);
            }
        }
        for (name, value) in self.extra {
            form = form.text(name, value);
        }
        if let Some(part) = file {
            form = form.part("File", part);
        }
        for (name, value) in self.trailing {
            form = form.text(name, value);
        }
        form
    }
}
