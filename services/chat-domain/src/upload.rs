//! What an upload really is, judged by its first bytes and never by its name or the type a
//! client claims: a file named `.png` that holds HTML must not be served as anything a
//! browser would run.

use crate::names::positive_id;
use serde::{Deserialize, Serialize};

positive_id!(
    /// An upload's id: positive, as the database assigns them. A message's attachment and
    /// an avatar name one; who may use it is checked where it is used (an upload of one's
    /// own).
    UploadId,
    "an upload id is a positive number"
);

/// An image's size in pixels as it is displayed (a photo's orientation applied). Known
/// from the upload on, so a client can reserve the space before the image arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}

/// The widths thumbnails are made in: an avatar is shown at most 80 CSS pixels wide (160
/// on a screen of two device pixels per CSS pixel), a timeline's image at most 360 (and
/// 720).
pub const THUMBNAIL_WIDTHS: [u32; 3] = [AVATAR_WIDTH, 360, 720];

/// The thumbnail an avatar is shown from: a 5 MB photo as a profile picture costs a few KB
/// wherever it appears.
pub const AVATAR_WIDTH: u32 = 160;

impl ImageSize {
    /// The size of this image's thumbnail `width` pixels wide, the aspect ratio kept; `None`
    /// when the image is no wider (it is its own thumbnail). Thumbnails are made by this
    /// rule, so a frame lists them from the size alone.
    pub fn thumbnail(self, width: u32) -> Option<ImageSize> {
        if width == 0 || width >= self.width {
            return None;
        }
        let height = (u64::from(self.height) * u64::from(width) + u64::from(self.width) / 2) / u64::from(self.width);
        Some(ImageSize {
            width,
            height: height.clamp(1, u64::from(u32::MAX)) as u32,
        })
    }

    /// Every thumbnail this image has, narrowest first.
    pub fn thumbnails(self) -> impl Iterator<Item = ImageSize> {
        THUMBNAIL_WIDTHS.into_iter().filter_map(move |w| self.thumbnail(w))
    }
}

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

    #[test]
    fn thumbnails_keep_the_aspect_ratio_and_only_shrink() {
        let size = |width, height| ImageSize { width, height };
        assert_eq!(
            size(4000, 3000).thumbnails().collect::<Vec<_>>(),
            [size(160, 120), size(360, 270), size(720, 540)]
        );
        // Narrower than some widths: only the narrower thumbnails; no wider: none at all.
        assert_eq!(
            size(500, 100).thumbnails().collect::<Vec<_>>(),
            [size(160, 32), size(360, 72)]
        );
        assert_eq!(size(160, 10).thumbnails().count(), 0);
        // A thin strip keeps at least one row.
        assert_eq!(size(10_000, 1).thumbnail(360).unwrap().height, 1);
    }

    proptest! {
        #[test]
        fn a_thumbnail_is_never_wider_or_taller_than_its_image(w in 1u32..100_000, h in 1u32..100_000) {
            let size = ImageSize { width: w, height: h };
            for t in size.thumbnails() {
                prop_assert!(t.width < w && t.height <= h && t.height >= 1);
            }
        }

        #[test]
        fn sniffing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = sniff_image(&bytes);
        }
    }
}
