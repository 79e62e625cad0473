//! `v0_2_format`: an output format built against `wattson:plugin@0.2.0`, the
//! way a site's format was written before 0.3.0: one line per record,
//! `<vm-uuid> <status> <joules> <quality> <model>`, all in one payload.

wit_bindgen::generate!({
    path: "../../../wit/since_v0.2.0",
    world: "wattson:plugin/output-format@0.2.0",
});

// The world's `use` brings `FormatInfo`, `EnergyRecord` and `Param` into this module.
use wattson::plugin::format::Status;
use wattson::plugin::types::Quality;

struct V02;

impl Guest for V02 {
    fn describe() -> FormatInfo {
        FormatInfo {
            name: "v0.2-lines".into(),
            version: "0.2.0".into(),
            description: "A wattson:plugin@0.2.0 format: uuid, status, joules, quality, model per \
                          line"
                .into(),
            media_type: "text/plain".into(),
            extension: "txt".into(),
            params: Vec::new(),
        }
    }

    fn render(records: Vec<EnergyRecord>, _params: Vec<Param>) -> Result<Vec<Vec<u8>>, String> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = String::new();
        for r in &records {
            let status = match r.status {
                Status::Started => "started",
                Status::Running => "running",
                Status::Completed => "completed",
            };
            let quality = match r.quality.kind {
                Quality::Measured => "measured",
                Quality::Estimated => "estimated",
            };
            out.push_str(&format!(
                "{} {status} {:?} {quality} {}\n",
                r.vm_uuid, r.joules, r.model
            ));
        }
        Ok(vec![out.into_bytes()])
    }
}

export!(V02);
