//! Training text: plain-text files (one file, or every `.txt` file under a directory, in path
//! order) cut into documents at paragraph breaks, and the held-out validation documents.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// A document closes at the first paragraph break after this many bytes: books become many
/// documents, so a validation split by document has some to take.
const DOCUMENT_BYTES: usize = 4096;
/// One document in this many is held out for validation (~1.6%).
const VALIDATION_EVERY: usize = 64;

/// The data's documents, split into training and validation.
#[derive(Debug)]
pub struct Corpus {
    /// Documents trained on.
    pub train: Vec<String>,
    /// Documents held out.
    pub validation: Vec<String>,
}

impl Corpus {
    /// Reads `path` (a file or a directory of `.txt` files) and splits it.
    pub fn read(path: &Path) -> Result<Self> {
        let files = text_files(path)?;
        let mut documents = Vec::new();
        for file in &files {
            let bytes = std::fs::read(file).map_err(|e| TrainError::io(file, e))?;
            // Gutenberg texts come with either line ending; paragraphs are found by blank lines.
            documents.extend(split_documents(&String::from_utf8_lossy(&bytes).replace("\r\n", "\n")));
        }
        let message = match documents.as_slice() {
            [] => "no text to train on".to_string(),
            [one] => format!("{} bytes of text, too little to hold out a validation document", one.len()),
            _ => return Ok(split(documents)),
        };
        Err(TrainError::Data { path: path.to_path_buf(), message })
    }
}

/// The files `path` names: itself, or the `.txt` files under it (recursively, sorted).
fn text_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| TrainError::io(path, e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| TrainError::io(&dir, e))? {
            let entry = entry.map_err(|e| TrainError::io(&dir, e))?.path();
            if entry.is_dir() {
                dirs.push(entry);
            } else if entry.extension().is_some_and(|e| e == "txt") {
                files.push(entry);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(TrainError::Data { path: path.to_path_buf(), message: "no .txt files in this directory".into() });
    }
    Ok(files)
}

/// Cuts `text` into documents of at least [`DOCUMENT_BYTES`], at paragraph breaks.
fn split_documents(text: &str) -> Vec<String> {
    let mut documents = Vec::new();
    let mut current = String::new();
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(paragraph);
        if current.len() >= DOCUMENT_BYTES {
            documents.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        documents.push(current);
    }
    documents
}

/// Every [`VALIDATION_EVERY`]th document (counting from the middle of the first run) is held
/// out; with fewer documents than that, the last one.
fn split(documents: Vec<String>) -> Corpus {
    let held_out = |i: usize| {
        if documents.len() < VALIDATION_EVERY {
            i + 1 == documents.len()
        } else {
            i % VALIDATION_EVERY == VALIDATION_EVERY / 2
        }
    };
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for (i, doc) in documents.iter().enumerate() {
        if held_out(i) {
            validation.push(doc.clone());
        } else {
            train.push(doc.clone());
        }
    }
    Corpus { train, validation }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_close_at_paragraph_breaks_past_the_size() {
        let paragraph = "x".repeat(1500);
        let text = [paragraph.as_str(); 7].join("\n\n");
        let docs = split_documents(&text);
        assert_eq!(docs.len(), 3, "3 + 3 paragraphs pass 4 KB, one is left over");
        assert!(docs[0].len() >= DOCUMENT_BYTES && docs[2].len() == 1500);
    }

    #[test]
    fn windows_line_endings_split_like_unix_ones() {
        let dir = tempfile::tempdir().unwrap();
        let paragraph = "y".repeat(3000);
        let path = dir.path().join("crlf.txt");
        std::fs::write(&path, [paragraph.as_str(); 4].join("\r\n\r\n")).unwrap();
        let corpus = Corpus::read(&path).unwrap();
        assert_eq!((corpus.train.len(), corpus.validation.len()), (1, 1));
        assert!(!corpus.train[0].contains('\r'));
    }

    #[test]
    fn about_one_in_sixty_four_documents_is_held_out() {
        let docs: Vec<String> = (0..640).map(|i| i.to_string()).collect();
        let corpus = split(docs);
        assert_eq!(corpus.validation.len(), 10);
        assert_eq!(corpus.train.len(), 630);
        let few = split(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(few.validation, ["c"]);
    }
}
