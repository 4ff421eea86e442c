//! What an uploaded image becomes before it is stored: its size, thumbnails in the
//! domain's widths, and a copy with no metadata.
//!
//! * **Bounded.** A decompression bomb is a small file that claims a huge picture. The
//!   decoder is given [`image::Limits`] (sides, and bytes it may allocate) and the pixel
//!   count is checked from the header, so such a file is refused before any pixel buffer is
//!   allocated. Decoding takes a core: at most [`DECODES`] run at once, off the async
//!   workers.
//! * **No metadata.** A photo's EXIF can hold where it was taken. A JPEG is decoded and
//!   encoded again (its orientation applied, its colour profile kept), which leaves nothing
//!   but pixels. PNG, GIF and WebP files are copied chunk by chunk, leaving out every chunk
//!   that is not picture, colour or animation: no loss, and animations keep playing.
//! * **Thumbnails** are JPEG, or PNG where the image has transparent pixels; a GIF's is its
//!   first frame. The whole image stays one click away.

use chat_domain::ImageSize;
use chat_domain::upload::{ImageType, THUMBNAIL_WIDTHS};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, Limits};
use std::io::Cursor;
use tokio::sync::Semaphore;

/// Largest side of an image we decode, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Most pixels in an image we decode: a 48-megapixel phone photo fits, a bomb does not.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Most bytes the decoder may allocate: the 50 MP at four bytes a pixel, and its working
/// space.
const MAX_ALLOC: u64 = 256 * 1024 * 1024;
/// A re-encoded photo: visually the same as what was sent.
const JPEG_QUALITY: u8 = 90;
/// A thumbnail: small on the wire, good enough at its size.
const THUMBNAIL_QUALITY: u8 = 80;

/// Decodes running at once in this process: each holds a core and up to [`MAX_ALLOC`].
pub static DECODES: Semaphore = Semaphore::const_new(2);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("images are limited to {MAX_SIDE} pixels a side and {MAX_PIXELS} pixels in all")]
    TooLarge,
    #[error("the image could not be read: {0}")]
    Unreadable(String),
}

/// An image ready to store.
#[derive(Debug)]
pub struct Prepared {
    /// The type it is served as (a JPEG stays a JPEG, and so on).
    pub kind: ImageType,
    /// The file as served: no metadata.
    pub bytes: Vec<u8>,
    pub size: ImageSize,
    /// Narrowest first, one per [`THUMBNAIL_WIDTHS`] width narrower than the image.
    pub thumbnails: Vec<PreparedThumbnail>,
}

#[derive(Debug)]
pub struct PreparedThumbnail {
    pub size: ImageSize,
    pub kind: ImageType,
    pub bytes: Vec<u8>,
}

/// [`prepare`] on a blocking thread, at most [`DECODES`] at a time.
pub async fn prepare_off_thread(bytes: bytes::Bytes, kind: ImageType) -> Result<Prepared, ImageError> {
    let _permit = DECODES.acquire().await.expect("the semaphore is never closed");
    tokio::task::spawn_blocking(move || prepare(&bytes, kind))
        .await
        .map_err(|e| ImageError::Unreadable(format!("decoding stopped: {e}")))?
}

/// Reads the image `bytes` (already sniffed as `kind`) and makes what is stored of it.
pub fn prepare(bytes: &[u8], kind: ImageType) -> Result<Prepared, ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format(kind));
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooLarge);
    }
    let (orientation, icc) = match kind {
        // Only a JPEG is re-encoded, so only a JPEG's orientation is applied (the others keep
        // their pixels exactly as sent, thumbnails too).
        ImageType::Jpeg => (
            decoder.orientation().unwrap_or(Orientation::NoTransforms),
            decoder.icc_profile().ok().flatten(),
        ),
        _ => (Orientation::NoTransforms, None),
    };
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    let size = ImageSize {
        width: image.width(),
        height: image.height(),
    };
    if size.width == 0 || size.height == 0 {
        return Err(ImageError::Unreadable("the image has no pixels".into()));
    }

    let broken = || ImageError::Unreadable("its structure is broken".into());
    let stripped = match kind {
        ImageType::Jpeg => encode_jpeg(&image, JPEG_QUALITY, icc)?,
        ImageType::Png => strip_png(bytes).ok_or_else(broken)?,
        ImageType::Gif => strip_gif(bytes).ok_or_else(broken)?,
        ImageType::Webp => strip_webp(bytes).ok_or_else(broken)?,
    };

    // Widest first, each from the one before: a 720 from the original, a 360 from the 720.
    let mut thumbnails = Vec::new();
    let mut source = image;
    for target in size.thumbnails().collect::<Vec<_>>().into_iter().rev() {
        let small = source.resize_exact(target.width, target.height, FilterType::Triangle);
        let (kind, bytes) = if transparent(&small) {
            (ImageType::Png, encode_png(&small)?)
        } else {
            (ImageType::Jpeg, encode_jpeg(&small, THUMBNAIL_QUALITY, None)?)
        };
        thumbnails.push(PreparedThumbnail {
            size: target,
            kind,
            bytes,
        });
        source = small;
    }
    thumbnails.reverse();
    debug_assert!(thumbnails.len() <= THUMBNAIL_WIDTHS.len());
    Ok(Prepared {
        kind,
        bytes: stripped,
        size,
        thumbnails,
    })
}

/// Whether any pixel lets the background through: only then is a thumbnail a PNG. An alpha
/// channel alone says nothing (screenshots are saved with one, every pixel opaque), and a
/// PNG of a photo is many times its JPEG.
fn transparent(image: &DynamicImage) -> bool {
    image.color().has_alpha() && image.to_rgba8().pixels().any(|p| p[3] < u8::MAX)
}

fn format(kind: ImageType) -> ImageFormat {
    match kind {
        ImageType::Png => ImageFormat::Png,
        ImageType::Jpeg => ImageFormat::Jpeg,
        ImageType::Gif => ImageFormat::Gif,
        ImageType::Webp => ImageFormat::WebP,
    }
}

fn decode_error(e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::Limits(_) => ImageError::TooLarge,
        other => ImageError::Unreadable(other.to_string()),
    }
}

fn encode_jpeg(image: &DynamicImage, quality: u8, icc: Option<Vec<u8>>) -> Result<Vec<u8>, ImageError> {
    // JPEG has no transparency: flatten to RGB (a decoded JPEG is already RGB or grey).
    let rgb = image.to_rgb8();
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, quality);
    if let Some(icc) = icc {
        // A wide-gamut photo keeps its colours; an encoder that cannot keep the profile
        // still makes a good file.
        let _ = encoder.set_icc_profile(icc);
    }
    encoder
        .write_image(rgb.as_raw(), rgb.width(), rgb.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| ImageError::Unreadable(e.to_string()))?;
    Ok(out)
}

fn encode_png(image: &DynamicImage) -> Result<Vec<u8>, ImageError> {
    let rgba = image.to_rgba8();
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(
            rgba.as_raw(),
            rgba.width(),
            rgba.height(),
            image::ExtendedColorType::Rgba8,
        )
        .map_err(|e| ImageError::Unreadable(e.to_string()))?;
    Ok(out)
}

/// A PNG with only the chunks that make the picture: the critical ones, and those for
/// transparency, colour and animation (APNG). Text, EXIF and time chunks are left out.
/// `None` if the chunk structure is broken.
pub fn strip_png(bytes: &[u8]) -> Option<Vec<u8>> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    const KEPT: [&[u8; 4]; 13] = [
        b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD", b"pHYs", b"cICP", b"acTL", b"fcTL", b"fdAT",
        b"mDCV",
    ];
    let mut rest = bytes.strip_prefix(SIGNATURE)?;
    let mut out = SIGNATURE.to_vec();
    loop {
        let length = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let chunk = rest.get(..length.checked_add(12)?)?;
        let name: &[u8; 4] = chunk[4..8].try_into().ok()?;
        // Bit 5 of the first letter: lowercase is ancillary, uppercase critical.
        let critical = name[0] & 0x20 == 0;
        if critical || KEPT.contains(&name) {
            out.extend_from_slice(chunk);
        }
        rest = &rest[chunk.len()..];
        if name == b"IEND" {
            return Some(out);
        }
    }
}

/// A GIF without comments or application data other than the looping instruction (where
/// XMP metadata would hide). `None` if the block structure is broken.
pub fn strip_gif(bytes: &[u8]) -> Option<Vec<u8>> {
    /// Skips data sub-blocks (a length byte, that many bytes, until a zero length) from
    /// `at`; returns the index after the terminator.
    fn sub_blocks(bytes: &[u8], mut at: usize) -> Option<usize> {
        loop {
            let length = *bytes.get(at)? as usize;
            at += 1 + length;
            if length == 0 {
                return Some(at);
            }
        }
    }
    /// A colour table's length in bytes if the packed field says there is one.
    fn table(packed: u8) -> usize {
        if packed & 0x80 != 0 {
            3 << ((packed & 0x07) + 1)
        } else {
            0
        }
    }
    let header = 13 + table(*bytes.get(10)?);
    let mut out = bytes.get(..header)?.to_vec();
    let mut at = header;
    loop {
        match *bytes.get(at)? {
            // Trailer.
            0x3B => {
                out.push(0x3B);
                return Some(out);
            }
            // Image: descriptor, local colour table, LZW code size, data.
            0x2C => {
                let packed = *bytes.get(at + 9)?;
                let end = sub_blocks(bytes, at + 10 + table(packed) + 1)?;
                out.extend_from_slice(bytes.get(at..end)?);
                at = end;
            }
            0x21 => {
                let label = *bytes.get(at + 1)?;
                let end = sub_blocks(bytes, at + 2)?;
                let keep = match label {
                    // Comment.
                    0xFE => false,
                    // Application: only the loop count, which browsers play by.
                    0xFF => matches!(
                        bytes.get(at + 2..at + 14),
                        Some(b"\x0bNETSCAPE2.0" | b"\x0bANIMEXTS1.0")
                    ),
                    // Graphic control (timing, transparency) and plain text are picture.
                    _ => true,
                };
                if keep {
                    out.extend_from_slice(bytes.get(at..end)?);
                }
                at = end;
            }
            _ => return None,
        }
    }
}

/// A WebP without its EXIF and XMP chunks (and their flags in the extended header).
/// `None` if the RIFF structure is broken.
pub fn strip_webp(bytes: &[u8]) -> Option<Vec<u8>> {
    let declared = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
    let mut rest = bytes.get(12..declared.checked_add(8)?)?;
    let mut out = bytes.get(..12)?.to_vec();
    while !rest.is_empty() {
        let length = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?) as usize;
        let padded = length.checked_add(8 + (length & 1))?;
        let chunk = rest.get(..padded)?;
        match &chunk[..4] {
            b"EXIF" | b"XMP " => {}
            b"VP8X" => {
                let start = out.len();
                out.extend_from_slice(chunk);
                // Flags: 0x08 EXIF, 0x04 XMP present.
                *out.get_mut(start + 8)? &= !(0x08 | 0x04);
            }
            _ => out.extend_from_slice(chunk),
        }
        rest = &rest[padded..];
    }
    let size = u32::try_from(out.len() - 8).ok()?;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    Some(out)
}

#[cfg(test)]
mod tests;
