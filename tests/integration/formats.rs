//! The builtin formats `apel-energy`, `csv` and `openmetrics`, called
//! through the host's runtime exactly as a run calls them.

use std::io::Write;
use std::process::{Command, Stdio};

use wattson::runtime::{
    EnergyRecord, Format, Limits, Param, ParamValue, Quality, RecordQuality, Runtime, Status,
    resolve_params,
};

/// Loads a builtin format.
fn load(name: &str) -> Format {
    let rt = Runtime::new(Limits::default(), None).expect("runtime");
    rt.load_format(name)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// Every declared parameter at its default, with `overrides` replacing some.
fn params(format: &Format, overrides: &[(&str, ParamValue)]) -> Vec<Param> {
    format
        .info()
        .params
        .iter()
        .map(|spec| {
            let value = overrides
                .iter()
                .find(|(name, _)| *name == spec.name)
                .map(|(_, v)| v.clone())
                .or_else(|| spec.default.clone())
                .unwrap_or_else(|| panic!("parameter {} has no default", spec.name));
            Param {
                name: spec.name.clone(),
                value,
            }
        })
        .collect()
}

/// 2025-06-01T00:00:00Z in ms.
const START_MS: i64 = 1_748_736_000_000;
/// One hour later.
const END_MS: i64 = START_MS + 3_600_000;

/// A measured record's quality.
fn quality(covered_s: Option<f64>) -> RecordQuality {
    RecordQuality {
        kind: Quality::Measured,
        meters: vec!["counter:libvirt_domain_info_energy_consumption_joules_total".into()],
        covered_s,
    }
}

/// A fully populated record.
fn full() -> EnergyRecord {
    EnergyRecord {
        id: "9f0e2a6e-0000-5000-8000-000000000001".into(),
        site: "TEST-Site".into(),
        cloud_type: "OpenStack".into(),
        compute_service: "nova".into(),
        vm_uuid: "e3c5aeef-37b8-4332-ad9f-9d068f156dc2".into(),
        vm_name: Some("vm-a".into()),
        project_id: Some("p1".into()),
        project_name: Some("Acme, \"R&D\"\nsecond line".into()),
        user_id: Some("u1".into()),
        user_name: Some("alice".into()),
        user_dn: None,
        fqan: Some("vo.example.org".into()),
        host: Some("compute-1".into()),
        flavor: Some("m1.small".into()),
        start_ms: START_MS,
        end_ms: END_MS,
        joules: 360_000.0,
        wall_s: 3600.0,
        cpu_s: None,
        vcpus: Some(2),
        memory_mb: Some(4096),
        status: Status::Running,
        quality: quality(None),
        pue: Some(1.3),
        ci_g: Some(210.0),
        cfp_g: Some(360_000.0 / 3.6e6 * 1.3 * 210.0),
        ci_covered_s: None,
        model: "libvirt-joules".into(),
        model_version: "0.1.0".into(),
        gpu_j: None,
        embodied_g: Some(2.675_513_698_630_137),
        embodied_source: Some("static".into()),
    }
}

/// A record with every optional field absent.
fn sparse() -> EnergyRecord {
    EnergyRecord {
        id: "9f0e2a6e-0000-5000-8000-000000000002".into(),
        site: "TEST-Site".into(),
        cloud_type: "OpenStack".into(),
        compute_service: "nova".into(),
        vm_uuid: "0B0C6A4C-4F5E-4D8E-9D38-1C2F3A4B5C6D".into(),
        vm_name: None,
        project_id: None,
        project_name: None,
        user_id: None,
        user_name: None,
        user_dn: None,
        fqan: None,
        host: None,
        flavor: None,
        start_ms: START_MS,
        end_ms: END_MS,
        joules: 36.0,
        wall_s: 1800.9,
        cpu_s: Some(1800.0),
        vcpus: None,
        memory_mb: None,
        status: Status::Completed,
        quality: quality(Some(1790.5)),
        pue: None,
        ci_g: None,
        cfp_g: None,
        ci_covered_s: None,
        model: "libvirt-joules".into(),
        model_version: "0.1.0".into(),
        gpu_j: None,
        embodied_g: None,
        embodied_source: None,
    }
}

/// `n` distinct records (distinct uuids).
fn many(n: usize) -> Vec<EnergyRecord> {
    (0..n)
        .map(|i| {
            let mut r = full();
            r.id = format!("9f0e2a6e-0000-5000-8000-{i:012x}");
            r.vm_uuid = format!("e3c5aeef-37b8-4332-ad9f-{i:012x}");
            r.joules = 1000.0 + i as f64;
            r
        })
        .collect()
}

fn utf8(payload: &[u8]) -> &str {
    std::str::from_utf8(payload).expect("payload is UTF-8")
}

// ---------------------------------------------------------------- apel-energy

/// The 16 wire keys of cASO 5.2.2's EnergyRecord, in pydantic's order.
pub const APEL_KEYS: [&str; 16] = [
    "SiteName",
    "CloudType",
    "CloudComputeService",
    "ExecUnitID",
    "StartExecTime",
    "EndExecTime",
    "EnergyWh",
    "Work",
    "Efficiency",
    "WallClockTime_s",
    "CpuDuration_s",
    "SuspendDuration_s",
    "CPUNormalizationFactor",
    "ExecUnitFinished",
    "Status",
    "Owner",
];

/// Parses an `apel` wire message: header, records split on `%%`, `Key: value`.
fn parse_apel(message: &str) -> Vec<Vec<(String, String)>> {
    let body = message
        .strip_prefix("APEL-energy-message: v0.1\n")
        .expect("header line");
    let body = body.strip_suffix('\n').expect("message ends in a newline");
    body.split("\n%%\n")
        .map(|record| {
            record
                .lines()
                .map(|line| {
                    let (k, v) = line
                        .split_once(": ")
                        .unwrap_or_else(|| panic!("not `Key: value`: {line:?}"));
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        })
        .collect()
}

fn get<'a>(record: &'a [(String, String)], key: &str) -> &'a str {
    record
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {record:?}"))
}

#[test]
fn apel_energy_json_is_casos_ssm_message() {
    let f = load("apel-energy");
    let mut no_carbon = full();
    (no_carbon.pue, no_carbon.ci_g, no_carbon.cfp_g) = (None, None, None);
    no_carbon.embodied_g = None;
    let payloads = f
        .render(&[no_carbon, sparse()], &params(&f, &[]))
        .expect("render");
    assert_eq!(payloads.len(), 1);
    // Bytes produced by cASO 5.2.2 itself (EnergyRecord(...).ssm_message())
    // for the first record's values.
    let expected = r#"{"SiteName":"TEST-Site","CloudType":"OpenStack","CloudComputeService":"nova","ExecUnitID":"e3c5aeef-37b8-4332-ad9f-9d068f156dc2","StartExecTime":"2025-06-01T00:00:00Z","EndExecTime":"2025-06-01T01:00:00Z","EnergyWh":100.0,"Work":72.0,"Efficiency":1.0,"WallClockTime_s":3600,"CpuDuration_s":7200,"SuspendDuration_s":0,"CPUNormalizationFactor":1.0,"ExecUnitFinished":0,"Status":"started","Owner":"vo.example.org"}"#;
    let text = utf8(&payloads[0]);
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], expected);
    // Key order of every line is pydantic's field order.
    for line in &lines {
        let mut at = 0;
        for key in APEL_KEYS {
            let needle = format!("\"{key}\":");
            let pos = line[at..]
                .find(&needle)
                .unwrap_or_else(|| panic!("{key} missing or out of order in {line}"));
            at += pos + needle.len();
        }
    }
    // Sparse record: no fqan/project → Owner "", 1800.9 s → 1800, cpu 1800 s,
    // vcpus unknown → 1, Efficiency = 1800 / (1800 * 1) = 1.0.
    assert!(lines[1].contains(r#""ExecUnitID":"0b0c6a4c-4f5e-4d8e-9d38-1c2f3a4b5c6d""#));
    assert!(lines[1].contains(r#""EnergyWh":0.01,"Work":180000.0,"Efficiency":1.0,"#));
    assert!(lines[1].contains(r#""WallClockTime_s":1800,"CpuDuration_s":1800,"#));
    assert!(lines[1].contains(r#""ExecUnitFinished":1,"Status":"completed","Owner":""}"#));

    // With [carbon] and [embodied]: cASO's bytes, then the keys GreenDIGIT
    // CIM adds, then the embodied grams.
    let with_carbon = f.render(&[full()], &params(&f, &[])).expect("render");
    let line = utf8(&with_carbon[0]).trim_end();
    let cim = line
        .strip_prefix(&expected[..expected.len() - 1])
        .unwrap_or_else(|| panic!("cASO's keys first: {line}"));
    let r = full();
    assert_eq!(
        cim,
        format!(
            ",\"CI_g\":{:?},\"CFP_g\":{:?},\"PUE\":{:?},\"embodied_g\":{:?}}}",
            r.ci_g.unwrap(),
            r.cfp_g.unwrap(),
            r.pue.unwrap(),
            r.embodied_g.unwrap()
        )
    );
}

#[test]
fn apel_energy_apel_wire_parses_back() {
    let f = load("apel-energy");
    let p = params(
        &f,
        &[
            ("wire", ParamValue::Choice("apel".into())),
            ("cpu_normalization_factor", ParamValue::Number(1.25)),
        ],
    );
    let payloads = f.render(&[full(), sparse()], &p).expect("render");
    assert_eq!(payloads.len(), 1);
    let records = parse_apel(utf8(&payloads[0]));
    assert_eq!(records.len(), 2);
    for (record, carbon) in records.iter().zip([true, false]) {
        let mut keys: Vec<&str> = record.iter().map(|(k, _)| k.as_str()).collect();
        let sorted = {
            let mut s = keys.clone();
            s.sort();
            s
        };
        assert_eq!(
            keys, sorted,
            "keys are sorted, as cASO sorts CloudRecord lines"
        );
        keys.sort();
        let mut expected = APEL_KEYS.to_vec();
        if carbon {
            expected.extend(["CI_g", "CFP_g", "PUE", "embodied_g"]);
        }
        expected.sort();
        assert_eq!(keys, expected);
    }
    let a = &records[0];
    assert_eq!(get(a, "SiteName"), "TEST-Site");
    assert_eq!(get(a, "CloudType"), "OpenStack");
    assert_eq!(get(a, "CloudComputeService"), "nova");
    assert_eq!(get(a, "ExecUnitID"), "e3c5aeef-37b8-4332-ad9f-9d068f156dc2");
    assert_eq!(get(a, "StartExecTime"), "2025-06-01T00:00:00Z");
    assert_eq!(get(a, "EndExecTime"), "2025-06-01T01:00:00Z");
    assert_eq!(get(a, "EnergyWh").parse::<f64>().unwrap(), 100.0);
    assert_eq!(get(a, "EnergyWh"), "100.0");
    assert_eq!(get(a, "Work"), "72.0");
    assert_eq!(get(a, "Efficiency"), "1.0");
    assert_eq!(get(a, "WallClockTime_s"), "3600");
    assert_eq!(get(a, "CpuDuration_s"), "7200");
    assert_eq!(get(a, "SuspendDuration_s"), "0");
    assert_eq!(get(a, "CPUNormalizationFactor"), "1.25");
    assert_eq!(get(a, "ExecUnitFinished"), "0");
    // APEL knows `started` and `completed`: a running VM is `started`.
    assert_eq!(get(a, "Status"), "started");
    assert_eq!(get(a, "Owner"), "vo.example.org");
    assert_eq!(get(a, "CI_g"), "210.0");
    assert_eq!(get(a, "PUE"), "1.3");
    assert_eq!(get(a, "embodied_g"), "2.675513698630137");
    let b = &records[1];
    assert_eq!(get(b, "ExecUnitID"), "0b0c6a4c-4f5e-4d8e-9d38-1c2f3a4b5c6d");
    assert_eq!(get(b, "EnergyWh"), "0.01");
    assert_eq!(get(b, "Work"), "180000.0");
    assert_eq!(get(b, "WallClockTime_s"), "1800");
    assert_eq!(get(b, "CpuDuration_s"), "1800");
    assert_eq!(get(b, "ExecUnitFinished"), "1");
    assert_eq!(get(b, "Status"), "completed");
    assert_eq!(get(b, "Owner"), "");
}

#[test]
fn apel_energy_batches_of_1000() {
    let f = load("apel-energy");
    for wire in ["json", "apel"] {
        let p = params(&f, &[("wire", ParamValue::Choice(wire.into()))]);
        let payloads = f.render(&many(2500), &p).expect("render");
        let counts: Vec<usize> = payloads
            .iter()
            .map(|payload| {
                let text = utf8(payload);
                if wire == "apel" {
                    parse_apel(text).len()
                } else {
                    text.lines().count()
                }
            })
            .collect();
        assert_eq!(counts, [1000, 1000, 500], "wire = {wire}");
        assert!(f.render(&[], &p).expect("render nothing").is_empty());
    }
}

/// The host's check of one parameter value against the format's declared domain.
fn check_param(f: &Format, name: &str, value: toml::Value) -> Result<(), String> {
    let given = [(name.to_owned(), value)].into_iter().collect();
    resolve_params(&f.info().params, &given)
        .map(|_| ())
        .map_err(|problems| problems[0].reason.clone())
}

#[test]
fn apel_energy_refuses_bad_batch_sizes() {
    let f = load("apel-energy");
    // The format declares its domain; the host refuses what is outside it.
    for bad in [0, -1, 1001] {
        let reason = check_param(&f, "batch_size", toml::Value::Integer(bad))
            .expect_err(&format!("batch_size = {bad} accepted"));
        assert_eq!(
            reason,
            format!("expected an integer from 1 to 1000, found integer `{bad}`")
        );
    }
    let reason = check_param(&f, "wire", toml::Value::String("xml".into())).unwrap_err();
    assert_eq!(reason, r#"expected one of "json" or "apel", found "xml""#);
    let p = params(&f, &[("batch_size", ParamValue::Integer(1))]);
    assert_eq!(f.render(&[full(), sparse()], &p).unwrap().len(), 2);
}

// ------------------------------------------------------------------------ csv

#[test]
fn csv_round_trips_through_the_csv_crate() {
    let f = load("csv");
    let records = vec![full(), sparse()];
    let payloads = f.render(&records, &params(&f, &[])).expect("render");
    assert_eq!(payloads.len(), 1);
    let text = utf8(&payloads[0]);
    // RFC 4180: every line, the last included, ends in CRLF.
    assert!(text.ends_with("\r\n"));
    assert!(text.starts_with(
        "id,site,cloud_type,compute_service,vm_uuid,vm_name,project_id,project_name,\
         user_id,user_name,user_dn,fqan,host,start,end,energy_joules,energy_kwh,wall_s,\
         cpu_s,vcpus,status,model,model_version,covered_s,pue,ci_g,cfp_g,embodied_g,\
         embodied_source\r\n"
    ));
    assert!(text.contains("\"Acme, \"\"R&D\"\"\nsecond line\""));

    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), records.len());
    let col = |row: &csv::StringRecord, name: &str| -> String {
        let i = header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        row[i].to_owned()
    };
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    for (row, r) in rows.iter().zip(&records) {
        assert_eq!(row.len(), 29);
        assert_eq!(col(row, "id"), r.id);
        assert_eq!(col(row, "site"), r.site);
        assert_eq!(col(row, "cloud_type"), r.cloud_type);
        assert_eq!(col(row, "compute_service"), r.compute_service);
        assert_eq!(col(row, "vm_uuid"), r.vm_uuid);
        assert_eq!(col(row, "vm_name"), opt(&r.vm_name));
        assert_eq!(col(row, "project_id"), opt(&r.project_id));
        assert_eq!(col(row, "project_name"), opt(&r.project_name));
        assert_eq!(col(row, "user_id"), opt(&r.user_id));
        assert_eq!(col(row, "user_name"), opt(&r.user_name));
        assert_eq!(col(row, "user_dn"), opt(&r.user_dn));
        assert_eq!(col(row, "fqan"), opt(&r.fqan));
        assert_eq!(col(row, "host"), opt(&r.host));
        assert_eq!(col(row, "start"), "2025-06-01T00:00:00.000Z");
        assert_eq!(col(row, "end"), "2025-06-01T01:00:00.000Z");
        assert_eq!(col(row, "energy_joules").parse::<f64>().unwrap(), r.joules);
        assert_eq!(
            col(row, "energy_kwh").parse::<f64>().unwrap(),
            r.joules / 3.6e6
        );
        assert_eq!(col(row, "wall_s").parse::<f64>().unwrap(), r.wall_s);
        assert_eq!(
            col(row, "cpu_s"),
            r.cpu_s.map(|c| format!("{c:?}")).unwrap_or_default()
        );
        assert_eq!(
            col(row, "covered_s"),
            r.quality
                .covered_s
                .map(|c| format!("{c:?}"))
                .unwrap_or_default()
        );
        assert_eq!(
            col(row, "vcpus"),
            r.vcpus.map(|v| v.to_string()).unwrap_or_default()
        );
        let status = match r.status {
            Status::Started => "started",
            Status::Running => "running",
            Status::Completed => "completed",
        };
        assert_eq!(col(row, "status"), status);
        assert_eq!(col(row, "model"), r.model);
        assert_eq!(col(row, "model_version"), r.model_version);
        assert_eq!(col(row, "embodied_source"), opt(&r.embodied_source));
        for (name, value) in [
            ("pue", r.pue),
            ("ci_g", r.ci_g),
            ("cfp_g", r.cfp_g),
            ("embodied_g", r.embodied_g),
        ] {
            assert_eq!(
                col(row, name),
                value.map(|v| format!("{v:?}")).unwrap_or_default()
            );
        }
    }
}

#[test]
fn csv_batches_and_refuses_negative_batch_size() {
    let f = load("csv");
    let all = f.render(&many(25), &params(&f, &[])).expect("render");
    assert_eq!(all.len(), 1);
    let p = params(&f, &[("batch_size", ParamValue::Integer(10))]);
    let payloads = f.render(&many(25), &p).expect("render");
    let rows: Vec<usize> = payloads
        .iter()
        .map(|payload| {
            let mut reader = csv::Reader::from_reader(payload.as_slice());
            assert_eq!(reader.headers().unwrap().len(), 29);
            reader.records().count()
        })
        .collect();
    assert_eq!(rows, [10, 10, 5]);
    let reason = check_param(&f, "batch_size", toml::Value::Integer(-1)).unwrap_err();
    assert_eq!(reason, "expected an integer ≥ 0, found integer `-1`");
    assert!(f.render(&[], &params(&f, &[])).unwrap().is_empty());
}

// ---------------------------------------------------------------- openmetrics

/// Runs `promtool check metrics` on `payload`; Ok(output) when it passes
/// (lint warnings, exit status 3, are failures too).
fn promtool_check(payload: &[u8]) -> Result<String, String> {
    let mut child = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running /usr/bin/promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload)
        .expect("writing promtool's stdin");
    let out = child.wait_with_output().expect("promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("promtool: {}: {text}", out.status))
    }
}

#[test]
fn openmetrics_passes_promtool_with_one_sample_per_record() {
    let f = load("openmetrics");
    let mut records = many(50);
    records.push(full());
    records.push(sparse());
    let payloads = f.render(&records, &params(&f, &[])).expect("render");
    assert_eq!(payloads.len(), 1);
    let text = utf8(&payloads[0]);
    promtool_check(&payloads[0]).unwrap_or_else(|e| panic!("{e}\n{text}"));

    assert!(text.contains("# TYPE wattson_vm_energy_joules gauge\n"));
    assert!(text.contains("# UNIT wattson_vm_energy_joules joules\n"));
    assert!(text.contains("# HELP wattson_vm_energy_joules "));
    assert!(text.ends_with("# EOF\n"));
    let samples: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("wattson_vm_energy_joules{"))
        .collect();
    assert_eq!(samples.len(), records.len());
    // Records with a footprint are in the carbon family too (not the sparse one).
    assert!(
        text.contains(
            "# TYPE wattson_vm_carbon_grams gauge\n# UNIT wattson_vm_carbon_grams grams\n"
        )
    );
    let carbon: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("wattson_vm_carbon_grams{"))
        .collect();
    assert_eq!(carbon.len(), records.len() - 1);
    for r in records.iter().filter(|r| r.cfp_g.is_some()) {
        let line = carbon
            .iter()
            .find(|l| l.contains(&format!("uuid=\"{}\"", r.vm_uuid)))
            .unwrap();
        let value: f64 = line.rsplit(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(Some(value), r.cfp_g);
    }
    // Escaped label value, absent labels omitted, value and timestamp.
    let end_s = END_MS / 1000;
    assert!(samples.contains(&format!(
        "wattson_vm_energy_joules{{uuid=\"e3c5aeef-37b8-4332-ad9f-9d068f156dc2\",name=\"vm-a\",\
         project=\"Acme, \\\"R&D\\\"\\nsecond line\",host=\"compute-1\",site=\"TEST-Site\",\
         model=\"libvirt-joules\"}} 360000.0 {end_s}"
    )
    .as_str()));
    assert!(
        samples.contains(
            &format!(
                "wattson_vm_energy_joules{{uuid=\"0B0C6A4C-4F5E-4D8E-9D38-1C2F3A4B5C6D\",\
         site=\"TEST-Site\",model=\"libvirt-joules\"}} 36.0 {end_s}"
            )
            .as_str()
        )
    );
    // Every value parses back exactly.
    for r in &records {
        let line = samples
            .iter()
            .find(|l| l.contains(&format!("uuid=\"{}\"", r.vm_uuid)))
            .unwrap();
        let mut fields = line.rsplitn(3, ' ');
        assert_eq!(fields.next().unwrap(), end_s.to_string());
        assert_eq!(fields.next().unwrap().parse::<f64>().unwrap(), r.joules);
    }
    assert!(f.render(&[], &params(&f, &[])).unwrap().is_empty());
}

#[test]
fn openmetrics_same_vm_in_two_windows_is_one_series_in_time_order() {
    let f = load("openmetrics");
    let mut later = full();
    later.start_ms = END_MS;
    later.end_ms = END_MS + 3_600_000;
    let payloads = f
        .render(&[later, full()], &params(&f, &[]))
        .expect("render");
    promtool_check(&payloads[0]).unwrap_or_else(|e| panic!("{e}"));
    let text = utf8(&payloads[0]);
    let stamps: Vec<i64> = text
        .lines()
        .filter(|l| l.starts_with("wattson_vm_energy_joules{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(stamps, [END_MS / 1000, END_MS / 1000 + 3600]);
    // Same series, same instant: refused.
    assert!(f.render(&[full(), full()], &params(&f, &[])).is_err());
}
