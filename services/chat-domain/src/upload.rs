//! What an upload really is, judged by its first bytes and never by its name or the type a
//! client claims: a file named `.png` that holds HTML must not be served as anything a
//! browser would run.

use crate::names::positive_id;

positive_id!(
    /// An upload's id: positive, as the database assigns them. A message's attachment and
    /// an avatar name one; who may use it is checked where it is used (an upload of one's
    /// own).
    UploadId,
    "an upload id is a positive number"
);

/// The image types accepted for avatars and image messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageType {
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    /// The type a stored `Content-Type` names, for serving it back.
    pub fn from_mime(mime: &str) -> Option<Self> {
        [Self::Png, Self::Jpeg, Self::Gif, Self::Webp]
            .into_iter()
            .find(|t| t.mime() == mime)
    }
}

/// The image type of `bytes` by their signature (magic numbers), or `None`.
pub fn sniff_image(bytes: &[u8]) -> Option<ImageType> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageType::Png)
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        Some(ImageType::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageType::Gif)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageType::Webp)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_accepted_type_is_recognised_by_its_bytes() {
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\nrest"), Some(ImageType::Png));
        assert_eq!(sniff_image(b"\xff\xd8\xff\xe0JFIF"), Some(ImageType::Jpeg));
        assert_eq!(sniff_image(b"GIF89a...."), Some(ImageType::Gif));
        assert_eq!(sniff_image(b"RIFF\x10\0\0\0WEBPVP8 "), Some(ImageType::Webp));
        for t in [ImageType::Png, ImageType::Jpeg, ImageType::Gif, ImageType::Webp] {
            assert_eq!(ImageType::from_mime(t.mime()), Some(t));
        }
    }

    #[test]
    fn html_svg_and_truncated_signatures_are_not_images() {
        for bytes in [
            &b"<!doctype html><script>alert(1)</script>"[..],
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            b"\x89PNG",
            b"RIFF\0\0\0\0WAVE",
            b"",
        ] {
            assert_eq!(sniff_image(bytes), None, "{bytes:?}");
        }
    }

    proptest! {
        #[test]
        fn sniffing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = sniff_image(&bytes);
        }
    }
}
