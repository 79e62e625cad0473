//! The builtin formats `apel-energy`, `csv`, `openmetrics` and
//! `tenant-metrics`, called through the host's runtime exactly as a run
//! calls them.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use super::support::node_exporter::NodeExporter;
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
         embodied_source,gpu_j\r\n"
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
        assert_eq!(row.len(), 30);
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
            ("gpu_j", r.gpu_j),
        ] {
            assert_eq!(
                col(row, name),
                value.map(|v| format!("{v:?}")).unwrap_or_default()
            );
        }
    }
}

/// A record's GPU part: a `jsonl` key after `energy_joules` and the last
/// `csv` column where set (neither else); no `apel-energy` or `caso-json`
/// key, their bytes those of the same record without it (the GPU joules are
/// inside `joules` already).
#[test]
fn gpu_j_is_a_jsonl_key_and_a_csv_column_and_nothing_in_apel_or_caso() {
    let mut gpu = full();
    gpu.gpu_j = Some(gpu.joules / 3.0);
    let render = |name: &str, r: &EnergyRecord, overrides: &[(&str, ParamValue)]| {
        let f = load(name);
        let p = params(&f, overrides);
        let payloads = f.render(std::slice::from_ref(r), &p).expect("render");
        assert_eq!(payloads.len(), 1);
        utf8(&payloads[0]).to_owned()
    };
    let line = render("jsonl", &gpu, &[]);
    let json: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
    assert_eq!(json["gpu_j"].as_f64(), Some(360_000.0 / 3.0));
    assert!(line.contains(&format!(
        "\"energy_joules\":360000.0,\"gpu_j\":{:?},\"wall_s\":",
        360_000.0 / 3.0
    )));
    assert!(!render("jsonl", &full(), &[]).contains("gpu_j"));
    let csv = render("csv", &gpu, &[]);
    let rows: Vec<&str> = csv.split("\r\n").collect();
    assert!(rows[0].ends_with(",embodied_source,gpu_j"));
    assert!(csv.ends_with(&format!(",static,{:?}\r\n", 360_000.0 / 3.0)));
    assert!(render("csv", &full(), &[]).ends_with(",static,\r\n"));
    for (name, overrides) in [
        ("apel-energy", vec![]),
        (
            "apel-energy",
            vec![("wire", ParamValue::Choice("apel".into()))],
        ),
        ("caso-json", vec![]),
    ] {
        assert_eq!(
            render(name, &gpu, &overrides),
            render(name, &full(), &overrides),
            "{name}"
        );
    }
}

/// The record of a VM that stopped in the lookback before the window
/// (`docs/ENERGY.md#record-status`): `completed`, 0 J, 0 s of wall and CPU
/// time. Every record format writes it, APEL's ratios guarded against the
/// zeros (cASO's guards) and its VM finished.
#[test]
fn a_completed_record_of_0_j_renders_in_every_format() {
    let mut ended = sparse();
    (ended.joules, ended.wall_s, ended.cpu_s) = (0.0, 0.0, Some(0.0));
    ended.vcpus = Some(2);
    ended.quality.covered_s = None;
    let render = |name: &str, overrides: &[(&str, ParamValue)]| {
        let f = load(name);
        let p = params(&f, overrides);
        let payloads = f
            .render(std::slice::from_ref(&ended), &p)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(payloads.len(), 1, "{name}");
        utf8(&payloads[0]).to_owned()
    };
    let json = render("apel-energy", &[]);
    assert!(
        json.contains(
            r#""EnergyWh":0.0,"Work":0.0,"Efficiency":0.0,"WallClockTime_s":0,"CpuDuration_s":0,"#
        ),
        "{json}"
    );
    assert!(
        json.contains(r#""ExecUnitFinished":1,"Status":"completed""#),
        "{json}"
    );
    let wire = render(
        "apel-energy",
        &[("wire", ParamValue::Choice("apel".into()))],
    );
    let records = parse_apel(&wire);
    assert_eq!(records.len(), 1);
    for (key, value) in [
        ("EnergyWh", "0.0"),
        ("Work", "0.0"),
        ("Efficiency", "0.0"),
        ("WallClockTime_s", "0"),
        ("CpuDuration_s", "0"),
        ("ExecUnitFinished", "1"),
        ("Status", "completed"),
    ] {
        assert_eq!(get(&records[0], key), value, "{key}");
    }
    let caso: serde_json::Value = serde_json::from_str(render("caso-json", &[]).trim()).unwrap();
    let caso = caso.as_array().map_or(&caso, |a| &a[0]);
    assert_eq!(caso["EnergyConsumption"].as_f64(), Some(0.0), "{caso}");
    let line: serde_json::Value = serde_json::from_str(render("jsonl", &[]).trim_end()).unwrap();
    assert_eq!(line["energy_joules"].as_f64(), Some(0.0));
    assert_eq!(line["wall_s"].as_f64(), Some(0.0));
    assert_eq!(line["cpu_s"].as_f64(), Some(0.0));
    assert_eq!(line["status"], "completed");
    let csv = render("csv", &[]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let col = |name: &str| &row[header.iter().position(|h| h == name).unwrap()];
    assert_eq!(
        [
            col("energy_joules"),
            col("wall_s"),
            col("cpu_s"),
            col("status")
        ],
        ["0.0", "0.0", "0.0", "completed"]
    );
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
            assert_eq!(reader.headers().unwrap().len(), 30);
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
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
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

/// `timestamps = false` (node_exporter's textfile collector): the same
/// samples without a timestamp, passing promtool, in a file node_exporter's
/// rules accept; one window per payload, so one VM twice is refused.
#[test]
fn openmetrics_without_timestamps_is_a_textfile() {
    let f = load("openmetrics");
    let off = params(&f, &[("timestamps", ParamValue::Flag(false))]);
    let records = vec![full(), sparse()];
    let stamped = utf8(&f.render(&records, &params(&f, &[])).unwrap()[0]).to_owned();
    let payloads = f.render(&records, &off).expect("render");
    let text = utf8(&payloads[0]);
    promtool_check(&payloads[0]).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let end_s = END_MS / 1000;
    let samples = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    let want: Vec<String> = samples(&stamped)
        .iter()
        .map(|l| l.strip_suffix(&format!(" {end_s}")).unwrap().to_owned())
        .collect();
    assert_eq!(samples(text), want, "{text}");
    assert!(
        text.contains("over the accounting window just rendered."),
        "{text}"
    );
    // node_exporter's textfile collector reads it (`# UNIT` and `# EOF` are
    // comments to it) and serves every sample.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wattson.prom"), text).unwrap();
    if let Some(exporter) = NodeExporter::start(dir.path()) {
        let served = exporter.scrape();
        let error = served
            .iter()
            .find(|(name, _, _)| name == "node_textfile_scrape_error")
            .unwrap();
        assert_eq!(error.2, 0.0, "{served:?}");
        for (uuid, joules) in [
            ("e3c5aeef-37b8-4332-ad9f-9d068f156dc2", 360000.0),
            ("0B0C6A4C-4F5E-4D8E-9D38-1C2F3A4B5C6D", 36.0),
        ] {
            assert!(
                served
                    .iter()
                    .any(|(name, labels, value)| name == "wattson_vm_energy_joules"
                        && labels.get("uuid").is_some_and(|u| u == uuid)
                        && *value == joules),
                "{uuid}: {served:?}"
            );
        }
    }
    let mut later = full();
    later.start_ms = END_MS;
    later.end_ms = END_MS + 3_600_000;
    let reason = f.render(&[full(), later], &off).unwrap_err().to_string();
    assert!(
        reason.contains("timestamps = false leaves one value per series"),
        "{reason}"
    );
}

// ------------------------------------------------------------- tenant-metrics

/// `promtool` (and with `server`, `prometheus`) on PATH: with `CI` set a
/// missing one fails the test, else the test is skipped, saying so.
fn promtool_present(server: bool) -> bool {
    let install = "apt-get install prometheus (scripts/setup.sh)";
    super::support::require_tool("promtool", install)
        && (!server || super::support::require_tool("prometheus", install))
}

/// Project ids and names of the tenant records (SCS labels).
const ASTRO: (&str, &str) = ("3f2a9c1e5b7d4e8f9a0b1c2d3e4f5a6b", "astro");
const BIO: (&str, &str) = ("9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e", "bio \"lab\"\\dept");
const CHEM: (&str, &str) = ("c0ffee00c0ffee00c0ffee00c0ffee00", "chem");

/// Record `i` of `project` with these joules and optional inputs.
fn tenant_record(
    i: usize,
    project: Option<(&str, &str)>,
    joules: f64,
    cfp_g: Option<f64>,
    gpu_j: Option<f64>,
    embodied_g: Option<f64>,
) -> EnergyRecord {
    let mut r = full();
    r.id = format!("9f0e2a6e-0000-5000-8000-{i:012x}");
    r.vm_uuid = format!("e3c5aeef-37b8-4332-ad9f-{i:012x}");
    r.project_id = project.map(|(id, _)| id.to_owned());
    r.project_name = project.map(|(_, name)| name.to_owned());
    r.joules = joules;
    r.cfp_g = cfp_g;
    r.gpu_j = gpu_j;
    r.embodied_g = embodied_g;
    r
}

/// The golden window's records: astro with every input (GPU and embodied
/// too), bio without GPU and embodied figures, chem with one record lacking
/// its footprint, and a record without a project.
fn tenant_records() -> Vec<EnergyRecord> {
    vec![
        tenant_record(1, Some(ASTRO), 27e6, Some(3000.0), Some(18e6), Some(125.0)),
        tenant_record(2, Some(BIO), 2.7e6, Some(150.0), None, None),
        tenant_record(3, Some(ASTRO), 18e6, Some(1875.0), Some(9e6), Some(250.0)),
        tenant_record(4, Some(CHEM), 1.8e6, Some(99.0), None, None),
        tenant_record(5, Some(CHEM), 1.8e6, None, None, None),
        tenant_record(6, None, 36.0, Some(1.0), Some(1.0), Some(1.0)),
    ]
}

/// The test's own arithmetic on `records` of one window: per (family,
/// project id), the value the payload must carry; a family of a project
/// with one record lacking its input has no entry.
fn tenant_expected(records: &[EnergyRecord]) -> BTreeMap<(String, String), f64> {
    let mut ids: Vec<&str> = records
        .iter()
        .filter_map(|r| r.project_id.as_deref())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut expected = BTreeMap::new();
    for id in ids {
        let of: Vec<&EnergyRecord> = records
            .iter()
            .filter(|r| r.project_id.as_deref() == Some(id))
            .collect();
        // Σ over the project's records, in their order; None if one lacks it.
        let sum = |field: fn(&EnergyRecord) -> Option<f64>| -> Option<f64> {
            of.iter()
                .map(|r| field(r))
                .try_fold(0.0, |acc, x| x.map(|x| acc + x))
        };
        let joules = sum(|r| Some(r.joules)).expect("joules");
        let operational = sum(|r| r.cfp_g).map(|g| g / 1000.0);
        let embodied = sum(|r| r.embodied_g).map(|g| g / 1000.0);
        let gpu = sum(|r| r.gpu_j).map(|j| j / 3.6e6);
        let mut put = |family: &str, value: Option<f64>| {
            if let Some(value) = value {
                expected.insert((family.to_owned(), id.to_owned()), value);
            }
        };
        put("sustainability_tenant_energy_kwh", Some(joules / 3.6e6));
        put("sustainability_tenant_operational_gwp_kg", operational);
        put("sustainability_tenant_embodied_gwp_kg", embodied);
        put(
            "sustainability_tenant_total_gwp_kg",
            operational.zip(embodied).map(|(o, e)| o + e),
        );
        put("wattson_tenant_gpu_energy_kwh", gpu);
    }
    expected
}

/// Unescapes a label value (`\\`, `\"`, `\n`).
fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('n') => '\n',
            Some(other) => other,
            None => panic!("dangling backslash in {value:?}"),
        });
    }
    out
}

/// A tenant sample line: family, project id and name (unescaped; none for
/// the window gauges), value and timestamp.
type TenantSample = (String, Option<(String, String)>, f64, Option<i64>);

/// The sample lines of a payload, parsed.
fn tenant_samples(text: &str) -> Vec<TenantSample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let (family, rest) = line.split_at(
                line.find(['{', ' '])
                    .unwrap_or_else(|| panic!("no value: {line}")),
            );
            let (labels, rest) = match rest.strip_prefix("{project_id=\"") {
                Some(rest) => {
                    let (id, rest) = rest.split_once("\",project_name=\"").expect(line);
                    let (name, rest) = rest.rsplit_once("\"}").expect(line);
                    (Some((id.to_owned(), unescape(name))), rest)
                }
                None => (None, rest),
            };
            let mut fields = rest.split_whitespace();
            let value: f64 = fields.next().expect(line).parse().expect(line);
            let stamp = fields.next().map(|t| t.parse().expect(line));
            assert!(fields.next().is_none(), "{line}");
            (family.to_owned(), labels, value, stamp)
        })
        .collect()
}

/// The golden payload's values: each is the test's arithmetic on the
/// records, and the bytes are the fixture's.
#[test]
fn tenant_metrics_golden_window_is_the_records_arithmetic_and_passes_promtool() {
    let f = load("tenant-metrics");
    let records = tenant_records();
    let payloads = f.render(&records, &params(&f, &[])).expect("render");
    assert_eq!(payloads.len(), 1, "one window, one payload");
    let text = utf8(&payloads[0]);
    let golden = include_str!("../fixtures/tenant-metrics/window.prom");
    assert_eq!(text, golden, "the golden payload");

    let expected = tenant_expected(&records);
    let samples = tenant_samples(text);
    let mut seen = BTreeMap::new();
    for (family, labels, value, stamp) in &samples {
        assert_eq!(*stamp, None, "no timestamps by default: {family}");
        match labels {
            Some((id, name)) => {
                let want = [ASTRO, BIO, CHEM]
                    .iter()
                    .find(|(i, _)| i == id)
                    .map(|(_, n)| *n);
                assert_eq!(Some(name.as_str()), want, "project_name of {id}");
                seen.insert((family.clone(), id.clone()), *value);
            }
            None if family == "wattson_tenant_window_start_seconds" => {
                assert_eq!(*value, (START_MS / 1000) as f64);
            }
            None if family == "wattson_tenant_window_end_seconds" => {
                assert_eq!(*value, (END_MS / 1000) as f64);
            }
            None => panic!("{family} without labels"),
        }
    }
    assert_eq!(seen, expected, "every value, and no other");
    // What the arithmetic leaves out: chem's footprint (one record lacks
    // it), bio's and chem's GPU and embodied figures, and the record with
    // no project (its 36 J are in nobody's energy).
    let chem_operational = (
        String::from("sustainability_tenant_operational_gwp_kg"),
        String::from(CHEM.0),
    );
    assert!(!seen.contains_key(&chem_operational));
    assert_eq!(
        seen.keys()
            .filter(|(f, _)| f == "wattson_tenant_gpu_energy_kwh")
            .count(),
        1
    );
    if promtool_present(false) {
        promtool_check(&payloads[0]).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}

/// The project with no project id is counted in one log line.
#[test]
fn tenant_metrics_logs_the_records_without_a_project() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.json");
    std::fs::write(&input, serde_json::to_vec(&tenant_records()).unwrap()).unwrap();
    let out = super::wattson::command()
        .env("WATTSON_LOG", "info")
        .args(["plugins", "test", "tenant-metrics", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    let stderr = super::support::ok(&out);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("no project id"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("1 of 6 record(s) have no project id") && lines[0].contains("INFO"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("6 record(s) -> 1 payload(s)") && stdout.contains("project_name=\"astro\""),
        "{stdout}"
    );
}

/// A family, or a project's sample in it, is left out when a record lacks
/// its input (never 0): no `gpu-j` anywhere, no GPU family; `embodied-g` on
/// one project's record only, embodied and total for that project only;
/// and today's records (no footprint, no GPU, no embodied figure): energy
/// and the window only.
#[test]
fn tenant_metrics_leaves_out_families_without_their_input() {
    let f = load("tenant-metrics");
    let records = vec![
        tenant_record(1, Some(ASTRO), 7.2e6, Some(400.0), None, None),
        tenant_record(2, Some(BIO), 3.6e6, Some(100.0), None, Some(5.0)),
    ];
    let payloads = f.render(&records, &params(&f, &[])).expect("render");
    let text = utf8(&payloads[0]);
    // No record has gpu_j: no GPU family at all.
    assert!(!text.contains("wattson_tenant_gpu_energy_kwh"), "{text}");
    // Embodied: bio's record has it, so bio's sample only.
    let samples = tenant_samples(text);
    let values = |family: &str| -> Vec<(String, f64)> {
        samples
            .iter()
            .filter(|s| s.0 == family)
            .map(|s| (s.1.clone().expect("labels").0, s.2))
            .collect()
    };
    assert_eq!(
        values("sustainability_tenant_embodied_gwp_kg"),
        [(BIO.0.to_owned(), 5.0 / 1000.0)]
    );
    // Total needs both parts: bio's only.
    assert_eq!(
        values("sustainability_tenant_total_gwp_kg"),
        [(BIO.0.to_owned(), 100.0 / 1000.0 + 5.0 / 1000.0)]
    );
    assert_eq!(
        values("sustainability_tenant_energy_kwh"),
        [(ASTRO.0.to_owned(), 7.2e6 / 3.6e6), (BIO.0.to_owned(), 1.0)]
    );
    assert_eq!(
        values("sustainability_tenant_operational_gwp_kg"),
        [(ASTRO.0.to_owned(), 0.4), (BIO.0.to_owned(), 0.1)]
    );
    assert!(!text.contains("} 0.0\n"), "no zero for unknown:\n{text}");

    // No footprint anywhere: energy and the window only.
    let bare = vec![tenant_record(1, Some(ASTRO), 3.6e6, None, None, None)];
    let text = String::from_utf8(f.render(&bare, &params(&f, &[])).unwrap().remove(0)).unwrap();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    assert_eq!(
        families,
        [
            "sustainability_tenant_energy_kwh gauge",
            "wattson_tenant_window_start_seconds gauge",
            "wattson_tenant_window_end_seconds gauge",
        ]
    );
    if promtool_present(false) {
        promtool_check(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}

/// Several windows in one render: one payload per window, in time order,
/// each with its own window gauges; no records, no payload; non-finite
/// joules are an error.
#[test]
fn tenant_metrics_one_payload_per_window_in_order() {
    let f = load("tenant-metrics");
    let mut later = tenant_record(1, Some(ASTRO), 3.6e6, None, None, None);
    later.start_ms = END_MS;
    later.end_ms = END_MS + 3_600_000;
    let earlier = tenant_record(2, Some(ASTRO), 7.2e6, None, None, None);
    let payloads = f
        .render(&[later, earlier], &params(&f, &[]))
        .expect("render");
    assert_eq!(payloads.len(), 2);
    for (payload, (start_ms, kwh)) in payloads.iter().zip([(START_MS, 2.0), (END_MS, 1.0)]) {
        let text = utf8(payload);
        assert!(text.ends_with("# EOF\n"), "{text}");
        let samples = tenant_samples(text);
        let value = |family: &str| {
            samples
                .iter()
                .find(|s| s.0 == family)
                .unwrap_or_else(|| panic!("no {family} in\n{text}"))
                .2
        };
        assert_eq!(value("sustainability_tenant_energy_kwh"), kwh);
        assert_eq!(
            value("wattson_tenant_window_start_seconds"),
            (start_ms / 1000) as f64
        );
        assert_eq!(
            value("wattson_tenant_window_end_seconds"),
            (start_ms / 1000 + 3600) as f64
        );
    }
    assert!(f.render(&[], &params(&f, &[])).unwrap().is_empty());
    let mut bad = tenant_record(1, Some(ASTRO), f64::NAN, None, None, None);
    let err = f.render(&[bad.clone()], &params(&f, &[])).unwrap_err();
    assert!(err.to_string().contains("joules is not finite"), "{err}");
    bad.joules = f64::INFINITY;
    assert!(f.render(&[bad], &params(&f, &[])).is_err());
}

/// `timestamps = true`: every sample carries the window's end in whole
/// seconds, `promtool tsdb create-blocks-from openmetrics` takes the payload,
/// and Prometheus serving the block answers the values and the unescaped
/// project names.
#[test]
fn tenant_metrics_with_timestamps_backfills_into_prometheus() {
    let f = load("tenant-metrics");
    let records = tenant_records();
    let p = params(&f, &[("timestamps", ParamValue::Flag(true))]);
    let payloads = f.render(&records, &p).expect("render");
    assert_eq!(payloads.len(), 1);
    let text = utf8(&payloads[0]);
    let samples = tenant_samples(text);
    assert_eq!(samples.len(), 10);
    for (family, _, _, stamp) in &samples {
        assert_eq!(*stamp, Some(END_MS / 1000), "{family}");
    }
    // The same lines as without timestamps, each stamped.
    let golden = include_str!("../fixtures/tenant-metrics/window.prom");
    let stamped: String = golden
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                format!("{l}\n")
            } else {
                format!("{l} {}\n", END_MS / 1000)
            }
        })
        .collect();
    assert_eq!(text, stamped);
    if !promtool_present(true) {
        return;
    }
    promtool_check(&payloads[0]).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // Backfills with promtool (the payload as the .om file), then serves.
    let prometheus = super::prometheus::Prometheus::start(text);
    let expected = tenant_expected(&records);
    for family in [
        "sustainability_tenant_energy_kwh",
        "sustainability_tenant_operational_gwp_kg",
        "sustainability_tenant_embodied_gwp_kg",
        "sustainability_tenant_total_gwp_kg",
        "wattson_tenant_gpu_energy_kwh",
    ] {
        let mut got: Vec<(String, String, f64)> = prometheus
            .query(family, END_MS)
            .into_iter()
            .map(|(labels, value)| {
                (
                    labels["project_id"].as_str().unwrap().to_owned(),
                    labels["project_name"].as_str().unwrap().to_owned(),
                    value,
                )
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want: Vec<(String, String, f64)> = expected
            .iter()
            .filter(|((f, _), _)| f == family)
            .map(|((_, id), v)| {
                let name = [ASTRO, BIO, CHEM].iter().find(|(i, _)| i == id).unwrap().1;
                (id.clone(), name.to_owned(), *v)
            })
            .collect();
        assert_eq!(got, want, "{family}");
    }
    let end = prometheus.query("wattson_tenant_window_end_seconds", END_MS);
    assert_eq!(end.len(), 1);
    assert_eq!(end[0].1, (END_MS / 1000) as f64);
}

/// node_exporter's textfile collector, the consumer the default is for,
/// reads the payload as it is (`node_textfile_scrape_error 0`, the samples
/// served); a payload with timestamps makes it refuse the file, which is why
/// they are off by default.
#[test]
fn tenant_metrics_default_payload_is_read_by_the_textfile_collector() {
    let f = load("tenant-metrics");
    let scrape = |timestamps: bool| -> Option<String> {
        let p = params(&f, &[("timestamps", ParamValue::Flag(timestamps))]);
        let payload = f.render(&tenant_records(), &p).expect("render").remove(0);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wattson-tenants.prom"), payload).unwrap();
        Some(NodeExporter::start(dir.path())?.body())
    };
    let Some(served) = scrape(false) else {
        return;
    };
    assert!(served.contains("node_textfile_scrape_error 0"), "{served}");
    assert!(
        served.contains(&format!(
            "sustainability_tenant_energy_kwh{{project_id=\"{}\",project_name=\"{}\"}} 12.5",
            ASTRO.0, ASTRO.1
        )),
        "{served}"
    );
    assert!(
        served.contains("wattson_tenant_window_end_seconds 1.7487396e+09"),
        "{served}"
    );
    let refused = scrape(true).expect("node_exporter");
    assert!(
        refused.contains("node_textfile_scrape_error 1")
            && !refused.contains("sustainability_tenant_energy_kwh{"),
        "{refused}"
    );
}
