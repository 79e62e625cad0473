//! `v0_1_format`: an output format built against `wattson:plugin@0.1.0`, the
//! way a site's format was written before 0.2.0: one line per record,
//! `<vm-uuid> <status> <joules> <covered-s or ->`, all in one payload.

wit_bindgen::generate!({
    path: "../../../wit/since_v0.1.0",
    world: "wattson:plugin/output-format@0.1.0",
});

// The world's `use` brings `FormatInfo`, `EnergyRecord` and `Param` into this module.

struct V01;

impl Guest for V01 {
    fn describe() -> FormatInfo {
        FormatInfo {
            name: "v0.1-lines".into(),
            version: "0.1.0".into(),
            description: "A wattson:plugin@0.1.0 format: uuid, status, joules per line".into(),
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
            let covered = r.covered_s.map_or("-".to_owned(), |c| format!("{c:?}"));
            out.push_str(&format!(
                "{} {} {:?} {covered}\n",
                r.vm_uuid, r.status, r.joules
            ));
        }
        Ok(vec![out.into_bytes()])
    }
}

export!(V01);
