//! `keyhive init` and `keyhive whoami`.

use anyhow::Result;
use keyhive_core::identity::Device;
use serde_json::json;

use crate::contacts::validate_name;
use crate::device_store;
use crate::home::Home;
use crate::output::Output;

/// Creates this device's identity.
pub fn init(home: &Home, out: Output, name: Option<String>) -> Result<()> {
    if let Some(n) = &name {
        validate_name(n)?;
    }
    let device = Device::generate(name.clone());
    let id = device.id().to_string();
    device_store::create(home, device)?;
    out.emit(
        &json!({"id": id, "name": name, "home": home.root()}),
        || {
            println!("Created device {id}");
            println!("  home: {}", home.root().display());
            println!("Next: `keyhive contact export` and send the line to people you share with.");
        },
    )
}

/// Prints this device's id and name.
pub fn whoami(home: &Home, out: Output) -> Result<()> {
    let device = device_store::load_device(home)?;
    let id = device.id().to_string();
    out.emit(
        &json!({"id": id, "name": device.name(), "home": home.root()}),
        || {
            println!("id:   {id}");
            println!("name: {}", device.name().unwrap_or("-"));
            println!("home: {}", home.root().display());
        },
    )
}
