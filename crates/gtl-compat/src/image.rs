//! Images in requests: URLs and inline base64 data, as GTL `Image`s.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use gtl_proto::Image;
use gtl_proto::types::Source;

use crate::DialectError;
use crate::json::Path;

/// Standard base64, with or without padding: clients differ, and the
/// bytes are the same either way.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An image given by URL.
///
/// A `data:<media type>;base64,<data>` URI is decoded into bytes: that is
/// the form every adapter can send (Ollama and Bedrock fetch no URLs), and
/// decoding here refuses bad base64 with the field's name instead of a
/// provider's error. `https:` and `http:` URLs stay URLs.
pub(crate) fn from_url(url: &str, detail: &str, path: &Path<'_>) -> Result<Image, DialectError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let Some((meta, data)) = rest.split_once(',') else {
            return Err(path.invalid("a data: URI needs a `,` before its data"));
        };
        let Some(media_type) = meta.strip_suffix(";base64") else {
            return Err(path
                .unsupported("only base64 data: URIs are accepted (`data:image/png;base64,...`)"));
        };
        return from_base64(media_type, data, detail, path);
    }
    let scheme = url.split_once(':').map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("https" | "http")) {
        return Err(path.invalid("expected an https:, http: or base64 data: URL"));
    }
    Ok(Image {
        media_type: String::new(),
        detail: detail.to_owned(),
        source: Some(Source::Url(url.to_owned())),
    })
}

/// An image given as base64 text and its media type.
pub(crate) fn from_base64(
    media_type: &str,
    data: &str,
    detail: &str,
    path: &Path<'_>,
) -> Result<Image, DialectError> {
    if !media_type.starts_with("image/") {
        return Err(path.invalid(format!(
            "`{media_type}` is not an image media type (image/png, image/jpeg, image/gif, image/webp)"
        )));
    }
    let bytes = BASE64
        .decode(data)
        .map_err(|error| path.invalid(format!("the image data is not base64: {error}")))?;
    Ok(Image {
        media_type: media_type.to_owned(),
        detail: detail.to_owned(),
        source: Some(Source::Data(bytes)),
    })
}
