//! The registry-backed [`super::ImageSource`] (filled in once the registry client is merged).

/// Images resolved and pulled through the registry client.
#[derive(Debug)]
pub struct RegistryImages;
