//! Images made here with the same crate, then dressed by hand with the metadata a camera
//! or an editor would add (EXIF with a position, text chunks, comments, XMP) and the
//! headers a decompression bomb would carry.

use super::*;
use image::{Rgb, RgbImage, Rgba, RgbaImage};

/// A marker standing for a photo's GPS position: it must not survive.
const SECRET: &[u8] = b"GPS 51.5007N 0.1246W";

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(name: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(name);
    chunk.extend_from_slice(data);
    let crc = crc32(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    chunk
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A gradient, so that compression and resizing have something to do.
fn photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    })
}

fn png(image: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
    out
}

/// A PNG with text, EXIF and time chunks inserted before its image data.
fn png_with_metadata(image: &DynamicImage) -> Vec<u8> {
    let plain = png(image);
    let idat = plain.windows(4).position(|w| w == b"IDAT").unwrap() - 4;
    let mut out = plain[..idat].to_vec();
    out.extend(png_chunk(b"tEXt", &[b"Comment\0".as_slice(), SECRET].concat()));
    out.extend(png_chunk(b"eXIf", &[b"MM\0*\0\0\0\x08".as_slice(), SECRET].concat()));
    out.extend(png_chunk(b"tIME", b"\x07\xea\x0c\x06\x09\x00\x00"));
    out.extend_from_slice(&plain[idat..]);
    out
}

/// A JPEG with an EXIF segment saying "rotate 90° clockwise to display" (orientation 6),
/// followed by bytes standing for the rest of a camera's EXIF.
fn jpeg_with_exif(image: &RgbImage) -> Vec<u8> {
    let mut plain = Vec::new();
    JpegEncoder::new_with_quality(&mut plain, 95)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    // TIFF, big-endian: one IFD entry, Orientation (0x0112), SHORT, 1 value: 6.
    let mut exif = b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
    exif.extend_from_slice(SECRET);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    segment.extend(exif);
    [&plain[..2], &segment, &plain[2..]].concat()
}

#[test]
fn a_photo_is_turned_upright_and_keeps_no_exif() {
    let sent = jpeg_with_exif(&photo(800, 400));
    assert!(contains(&sent, SECRET) && contains(&sent, b"Exif"));
    let prepared = prepare(&sent, ImageType::Jpeg).unwrap();
    assert_eq!(prepared.kind, ImageType::Jpeg);
    // Orientation 6: what was 800 × 400 in the file is 400 × 800 on screen.
    assert_eq!(
        prepared.size,
        ImageSize {
            width: 400,
            height: 800
        }
    );
    for file in std::iter::once(&prepared.bytes).chain(prepared.thumbnails.iter().map(|t| &t.bytes)) {
        assert!(!contains(file, SECRET), "the position survived");
        assert!(!contains(file, b"Exif"), "an EXIF segment survived");
    }
    let stored = image::load_from_memory(&prepared.bytes).unwrap();
    assert_eq!((stored.width(), stored.height()), (400, 800));
    // The image is narrower than 720: thumbnails 160 and 360 wide.
    let sizes: Vec<_> = prepared
        .thumbnails
        .iter()
        .map(|t| (t.size.width, t.size.height))
        .collect();
    assert_eq!(sizes, [(160, 320), (360, 720)]);
}

#[test]
fn thumbnails_have_their_sizes_and_a_transparent_image_keeps_its_transparency() {
    let opaque = DynamicImage::ImageRgb8(photo(1000, 500));
    let prepared = prepare(&png(&opaque), ImageType::Png).unwrap();
    assert_eq!(
        prepared.size,
        ImageSize {
            width: 1000,
            height: 500
        }
    );
    let got: Vec<_> = prepared
        .thumbnails
        .iter()
        .map(|t| {
            let decoded = image::load_from_memory(&t.bytes).unwrap();
            (t.kind, t.size.width, t.size.height, decoded.width(), decoded.height())
        })
        .collect();
    assert_eq!(
        got,
        [
            (ImageType::Jpeg, 160, 80, 160, 80),
            (ImageType::Jpeg, 360, 180, 360, 180),
            (ImageType::Jpeg, 720, 360, 720, 360),
        ]
    );

    let clear = DynamicImage::ImageRgba8(RgbaImage::from_pixel(400, 400, Rgba([0, 0, 255, 0])));
    let prepared = prepare(&png(&clear), ImageType::Png).unwrap();
    let thumbnail = &prepared.thumbnails[0];
    assert_eq!(thumbnail.kind, ImageType::Png);
    let decoded = image::load_from_memory(&thumbnail.bytes).unwrap().to_rgba8();
    assert_eq!(decoded.get_pixel(10, 10)[3], 0, "still transparent");

    // An alpha channel with every pixel opaque (a screenshot) is a photo: JPEG thumbnails.
    let opaque_rgba = DynamicImage::ImageRgba8(RgbaImage::from_fn(400, 300, |x, y| Rgba([x as u8, y as u8, 9, 255])));
    let prepared = prepare(&png(&opaque_rgba), ImageType::Png).unwrap();
    assert!(prepared.thumbnails.iter().all(|t| t.kind == ImageType::Jpeg));

    // No wider than the narrowest width: its own thumbnail.
    let small = prepare(&png(&DynamicImage::ImageRgb8(photo(150, 100))), ImageType::Png).unwrap();
    assert!(small.thumbnails.is_empty());
}

#[test]
fn a_png_loses_its_text_exif_and_time_chunks_and_nothing_of_its_picture() {
    let original = DynamicImage::ImageRgba8(RgbaImage::from_fn(64, 48, |x, y| Rgba([x as u8, y as u8, 7, 200])));
    let sent = png_with_metadata(&original);
    let prepared = prepare(&sent, ImageType::Png).unwrap();
    assert!(!contains(&prepared.bytes, SECRET));
    for name in [b"tEXt", b"eXIf", b"tIME"] {
        assert!(!contains(&prepared.bytes, name), "{}", String::from_utf8_lossy(name));
    }
    let stored = image::load_from_memory(&prepared.bytes).unwrap();
    assert_eq!(stored.to_rgba8(), original.to_rgba8(), "lossless");
}

#[test]
fn a_gif_loses_comments_and_xmp_but_keeps_its_loop() {
    // 1 × 1, global colour table of two colours, then the extensions, then the image.
    let head = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff".as_slice();
    let looping = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\0\0\0".as_slice();
    let comment = [b"\x21\xfe".as_slice(), &[SECRET.len() as u8], SECRET, b"\0"].concat();
    let xmp = [
        b"\x21\xff\x0bXMP DataXMP".as_slice(),
        &[SECRET.len() as u8],
        SECRET,
        b"\0",
    ]
    .concat();
    let picture = b"\x21\xf9\x04\0\0\0\0\0\x2c\0\0\0\0\x01\0\x01\0\0\x02\x02\x44\x01\0\x3b".as_slice();
    let sent = [head, looping, &comment, &xmp, picture].concat();
    let prepared = prepare(&sent, ImageType::Gif).unwrap();
    assert!(!contains(&prepared.bytes, SECRET));
    assert!(contains(&prepared.bytes, b"NETSCAPE2.0"), "the loop count stays");
    assert_eq!(prepared.bytes, [head, looping, picture].concat());
    assert_eq!(prepared.size, ImageSize { width: 1, height: 1 });
}

#[test]
fn a_webp_loses_its_exif_and_xmp_chunks_and_their_flags() {
    let mut plain = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut plain)
        .write_image(photo(40, 30).as_raw(), 40, 30, image::ExtendedColorType::Rgb8)
        .unwrap();
    // The extended form: VP8X (flags EXIF | XMP, canvas 40 × 30), the picture, then both.
    let mut vp8x = b"VP8X\x0a\0\0\0\x0c\0\0\0".to_vec();
    vp8x.extend_from_slice(&39u32.to_le_bytes()[..3]);
    vp8x.extend_from_slice(&29u32.to_le_bytes()[..3]);
    let riff_chunk = |name: &[u8], data: &[u8]| {
        let mut chunk = name.to_vec();
        chunk.extend_from_slice(&(data.len() as u32).to_le_bytes());
        chunk.extend_from_slice(data);
        if data.len() % 2 == 1 {
            chunk.push(0);
        }
        chunk
    };
    let body = [
        b"WEBP".as_slice(),
        &vp8x,
        &plain[12..],
        &riff_chunk(b"EXIF", SECRET),
        &riff_chunk(b"XMP ", SECRET),
    ]
    .concat();
    let sent = [b"RIFF".as_slice(), &(body.len() as u32).to_le_bytes(), &body].concat();
    let prepared = prepare(&sent, ImageType::Webp).unwrap();
    assert!(!contains(&prepared.bytes, SECRET));
    assert_eq!(prepared.bytes[20] & 0x0c, 0, "the EXIF and XMP flags are cleared");
    let declared = u32::from_le_bytes(prepared.bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(declared + 8, prepared.bytes.len());
    let stored = image::load_from_memory(&prepared.bytes).unwrap();
    assert_eq!(stored.to_rgb8(), photo(40, 30));
}

/// A PNG whose header claims `width` × `height` and whose data is a few bytes: what a
/// decompression bomb looks like before it is inflated.
fn bomb(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    [
        b"\x89PNG\r\n\x1a\n".as_slice(),
        &png_chunk(b"IHDR", &ihdr),
        &png_chunk(b"IDAT", b"\x78\x9c\x63\x00\x00\x00\x01\x00\x01"),
        &png_chunk(b"IEND", b""),
    ]
    .concat()
}

#[test]
fn a_decompression_bomb_is_refused_from_its_header() {
    // Too wide for the decoder's limits, and within them but too many pixels in all.
    for (width, height) in [(100_000, 100_000), (MAX_SIDE + 1, 10), (10_000, 10_000)] {
        assert_eq!(
            prepare(&bomb(width, height), ImageType::Png).unwrap_err(),
            ImageError::TooLarge,
            "{width} × {height}"
        );
    }
}

#[test]
fn a_broken_file_is_unreadable_not_a_panic() {
    let good = png(&DynamicImage::ImageRgb8(photo(20, 20)));
    for cut in [8, 20, good.len() / 2, good.len() - 13] {
        assert!(
            matches!(prepare(&good[..cut], ImageType::Png), Err(ImageError::Unreadable(_))),
            "cut at {cut}"
        );
    }
    assert!(matches!(
        prepare(b"\xff\xd8\xff\xe0 not a jpeg", ImageType::Jpeg),
        Err(ImageError::Unreadable(_))
    ));
    assert!(strip_gif(b"GIF89a\x01\0\x01\0\x80\0\0").is_none());
    assert!(strip_webp(b"RIFF\xff\xff\xff\xffWEBP").is_none());
}

proptest::proptest! {
    #[test]
    fn the_strippers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let _ = strip_png(&[b"\x89PNG\r\n\x1a\n".as_slice(), &bytes].concat());
        let _ = strip_gif(&[b"GIF89a".as_slice(), &bytes].concat());
        let _ = strip_webp(&[b"RIFF".as_slice(), &bytes].concat());
    }
}
