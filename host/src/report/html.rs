//! A report as one self-contained HTML page: the totals table, bar charts of
//! each group's energy and carbon, a per-day stacked chart of energy, and
//! each VM's line.
//!
//! The charts are inline SVG whose geometry is computed here; the page is
//! rendered from `report.html` by minijinja, which escapes every value (the
//! template's name ends in `.html`). The page loads nothing: no script, font,
//! image or stylesheet from elsewhere. Each bar carries its exact number in
//! `data-value` (shortest text that parses back to the same `f64`) and its
//! group's key in `data-group`, so a test or a scraper can read it back.

use std::io::Write;

use serde::Serialize;

use super::output::{fit, group_name};
use super::{DAY_MS, Report, Totals, VmUsage, day_of, time};

/// The page's template.
const TEMPLATE: &str = include_str!("report.html");

/// Colours of the groups, in turn (Okabe–Ito, readable by colour-blind
/// readers; they repeat after eight groups).
const PALETTE: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#999999",
];

/// Width of every chart, px.
const WIDTH: f64 = 1000.0;
/// The bar charts: room for the names on the left, a row per group.
const NAMES: f64 = 230.0;
/// Room right of the longest bar for its value.
const VALUE_ROOM: f64 = 110.0;
const ROW: f64 = 24.0;
const BAR: f64 = 16.0;
/// The per-day chart: its plot's height, the room left of it for the axis
/// and below it for the dates.
const PLOT: f64 = 300.0;
const AXIS: f64 = 70.0;
const DATES: f64 = 40.0;
/// At most this many dates are written under the per-day chart.
const MAX_DATES: usize = 16;

/// Writes `report` as an HTML page.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE)
        .map_err(std::io::Error::other)?;
    let template = env
        .get_template("report.html")
        .map_err(std::io::Error::other)?;
    // Rendered whole, then written: a write error keeps its kind (a closed
    // pipe is not a failure).
    let html = template
        .render(Page::new(report))
        .map_err(std::io::Error::other)?;
    out.write_all(html.as_bytes())?;
    out.write_all(b"\n")
}

/// Everything the template shows, formatted.
#[derive(Serialize)]
struct Page {
    from: String,
    to: String,
    /// `project`, `vm`, `host` or `flavor`.
    by: &'static str,
    /// The first column's heading.
    heading: &'static str,
    /// The hosts' metered energy, kWh, and the share of it attributed.
    host_kwh: Option<String>,
    host_share: Option<String>,
    rows: Vec<Row>,
    total: Row,
    energy: BarChart,
    /// None where no group's carbon is known.
    carbon: Option<BarChart>,
    daily: DailyChart,
    vms: Vec<VmRow>,
}

impl Page {
    fn new(report: &Report) -> Self {
        let names: Vec<String> = report
            .groups
            .iter()
            .map(|g| group_name(report.by, g))
            .collect();
        let row = |name: &str, t: &Totals, colour: Option<&'static str>| Row {
            name: name.to_owned(),
            colour,
            vms: t.vms,
            hours: fixed(t.hours, 1),
            vcpu_hours: fixed(t.vcpu_hours, 1),
            memory_gb_hours: fixed(t.memory_mb_hours / 1024.0, 1),
            disk_gb_hours: t.local_gb_hours.map(|v| fixed(v, 1)),
            kwh: fixed(t.kwh(), 3),
            gpu_kwh: t.known.gpu_kwh().map(|v| fixed(v, 3)),
            carbon_g: t.carbon_g.map(|v| fixed(v, 1)),
            embodied_g: t.known.embodied_g().map(|v| fixed(v, 1)),
            total_g: t.known.total_g().map(|v| fixed(v, 1)),
            share: report.share(t).map(percent),
        };
        let bars = |value: &dyn Fn(&Totals) -> Option<f64>| -> Vec<(usize, f64)> {
            report
                .groups
                .iter()
                .enumerate()
                .filter_map(|(i, g)| value(&g.totals).map(|v| (i, v)))
                .collect()
        };
        let carbon = bars(&|t| t.carbon_g);
        Self {
            from: time(report.period.start_ms),
            to: time(report.period.end_ms),
            by: report.by.as_str(),
            heading: match report.by {
                super::By::Project => "Project",
                super::By::Vm => "VM",
                super::By::Host => "Host",
                super::By::Flavor => "Flavor",
            },
            host_kwh: report.host_joules.map(|j| fixed(j / 3.6e6, 3)),
            host_share: report.share(&report.totals).map(percent),
            rows: report
                .groups
                .iter()
                .zip(&names)
                .enumerate()
                .map(|(i, (g, name))| row(name, &g.totals, Some(colour(i))))
                .collect(),
            total: row("Total", &report.totals, None),
            energy: BarChart::new(
                report,
                &names,
                "energy",
                "kWh",
                3,
                &bars(&|t| Some(t.kwh())),
            ),
            carbon: (!carbon.is_empty())
                .then(|| BarChart::new(report, &names, "carbon", "gCO2e", 1, &carbon)),
            daily: DailyChart::new(report, &names),
            vms: report
                .groups
                .iter()
                .flat_map(|g| &g.vms)
                .map(VmRow::new)
                .collect(),
        }
    }
}

/// A line of the totals table.
#[derive(Serialize)]
struct Row {
    name: String,
    /// Its colour in the charts (not the total's).
    colour: Option<&'static str>,
    vms: usize,
    hours: String,
    vcpu_hours: String,
    memory_gb_hours: String,
    disk_gb_hours: Option<String>,
    kwh: String,
    /// Blank (None) unless every record of the row has the part.
    gpu_kwh: Option<String>,
    carbon_g: Option<String>,
    embodied_g: Option<String>,
    total_g: Option<String>,
    share: Option<String>,
}

/// A horizontal bar chart, a bar per group whose value is known.
#[derive(Serialize)]
struct BarChart {
    /// `energy` or `carbon`: the bars' ids are `{metric}-{group index}`.
    metric: &'static str,
    unit: &'static str,
    height: String,
    /// Where the bars start, and the axis; where the names end.
    axis_x: String,
    name_x: String,
    bars: Vec<Bar>,
}

/// One bar of a [`BarChart`].
#[derive(Serialize)]
struct Bar {
    id: String,
    /// The group's key (project id, VM uuid, host, flavor).
    group: String,
    name: String,
    /// The name as written left of the bar (cut to fit).
    short_name: String,
    /// The exact value, and as written.
    value: String,
    label: String,
    colour: &'static str,
    x: String,
    y: String,
    width: String,
    height: String,
    /// Where the name and the value are written (their baseline).
    text_y: String,
    value_x: String,
}

impl BarChart {
    /// The chart of `values`: (group index, value).
    fn new(
        report: &Report,
        names: &[String],
        metric: &'static str,
        unit: &'static str,
        decimals: usize,
        values: &[(usize, f64)],
    ) -> Self {
        let max = values.iter().map(|&(_, v)| v).fold(0.0, f64::max);
        let room = WIDTH - NAMES - VALUE_ROOM;
        let bars = values
            .iter()
            .enumerate()
            .map(|(row, &(i, value))| {
                let width = if max > 0.0 { value / max * room } else { 0.0 };
                let top = row as f64 * ROW + (ROW - BAR) / 2.0;
                Bar {
                    id: format!("{metric}-{i}"),
                    group: report.groups[i].key.clone(),
                    name: names[i].clone(),
                    short_name: fit(&names[i], 30),
                    value: exact(value),
                    label: format!("{} {unit}", fixed(value, decimals)),
                    colour: colour(i),
                    x: coord(NAMES),
                    y: coord(top),
                    width: coord(width),
                    height: coord(BAR),
                    text_y: coord(top + BAR - 3.0),
                    value_x: coord(NAMES + width + 6.0),
                }
            })
            .collect::<Vec<_>>();
        Self {
            metric,
            unit,
            height: coord(bars.len().max(1) as f64 * ROW),
            axis_x: coord(NAMES),
            name_x: coord(NAMES - 8.0),
            bars,
        }
    }
}

/// A column per UTC day of the period, stacked by group.
#[derive(Serialize)]
struct DailyChart {
    height: String,
    /// The plot's left edge, top and bottom.
    left: String,
    top: String,
    bottom: String,
    right: String,
    /// Where the gridlines' values end, and the dates' baseline.
    tick_x: String,
    date_y: String,
    /// Horizontal lines with their values, kWh.
    ticks: Vec<Tick>,
    days: Vec<Day>,
}

/// A gridline of the per-day chart.
#[derive(Serialize)]
struct Tick {
    y: String,
    /// Its value's baseline.
    label_y: String,
    label: String,
}

/// A day's column.
#[derive(Serialize)]
struct Day {
    /// `2025-06-01`.
    date: String,
    /// Written under the column (not under every one when there are many).
    label: Option<String>,
    label_x: String,
    /// The day's total, kWh, as written above its column.
    total: String,
    total_y: String,
    segments: Vec<Segment>,
}

/// A group's part of a day's column.
#[derive(Serialize)]
struct Segment {
    id: String,
    group: String,
    name: String,
    /// The exact energy, kWh, and as written.
    value: String,
    label: String,
    colour: &'static str,
    x: String,
    y: String,
    width: String,
    height: String,
}

impl DailyChart {
    fn new(report: &Report, names: &[String]) -> Self {
        let first = day_of(report.period.start_ms);
        let last = day_of((report.period.end_ms - 1).max(report.period.start_ms));
        let days: Vec<i64> = (first..=last).step_by(DAY_MS as usize).collect();
        let kwh = |t: &Totals, day: i64| t.daily_joules.get(&day).map(|j| j / 3.6e6);
        let max = days
            .iter()
            .filter_map(|&d| kwh(&report.totals, d))
            .fold(0.0, f64::max);
        let (step, top_value) = nice_scale(max);
        let (left, top) = (AXIS, 20.0);
        let bottom = top + PLOT;
        let slot = (WIDTH - left - 10.0) / days.len() as f64;
        let y = |kwh: f64| bottom - kwh / top_value * PLOT;
        let every = days.len().div_ceil(MAX_DATES);
        let ticks = (0..)
            .map(|i| f64::from(i) * step)
            .take_while(|&v| v <= top_value * (1.0 + 1e-9))
            .map(|v| Tick {
                y: coord(y(v)),
                label_y: coord(y(v) + 4.0),
                label: trim(v),
            })
            .collect();
        let days = days
            .iter()
            .enumerate()
            .map(|(d, &day)| {
                let x = left + d as f64 * slot + slot * 0.15;
                let mut base = 0.0;
                let segments = report
                    .groups
                    .iter()
                    .enumerate()
                    .filter_map(|(i, g)| Some((i, g, kwh(&g.totals, day)?)))
                    .map(|(i, g, value)| {
                        let segment = Segment {
                            id: format!("day-{d}-{i}"),
                            group: g.key.clone(),
                            name: names[i].clone(),
                            value: exact(value),
                            label: fixed(value, 3),
                            colour: colour(i),
                            x: coord(x),
                            y: coord(y(base + value)),
                            width: coord(slot * 0.7),
                            height: coord(value / top_value * PLOT),
                        };
                        base += value;
                        segment
                    })
                    .collect();
                Day {
                    date: date(day),
                    label: (d % every == 0).then(|| date(day)[5..].to_owned()),
                    label_x: coord(x + slot * 0.35),
                    total: fixed(kwh(&report.totals, day).unwrap_or(0.0), 3),
                    total_y: coord(y(base) - 4.0),
                    segments,
                }
            })
            .collect();
        Self {
            height: coord(bottom + DATES),
            left: coord(left),
            top: coord(top),
            bottom: coord(bottom),
            right: coord(WIDTH - 10.0),
            tick_x: coord(left - 6.0),
            date_y: coord(bottom + 16.0),
            ticks,
            days,
        }
    }
}

/// A step of 1, 2 or 5 × 10ⁿ giving at most five gridlines up to `max`, and
/// the top of the scale (`max` itself where it is 0).
fn nice_scale(max: f64) -> (f64, f64) {
    if max <= 0.0 {
        return (1.0, 1.0);
    }
    let rough = max / 5.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&s| s >= rough)
        .unwrap_or(10.0 * power);
    (step, (max / step).ceil() * step)
}

/// A VM's line.
#[derive(Serialize)]
struct VmRow {
    name: Option<String>,
    /// The uuid, and as written (its start: the whole is its title).
    uuid: String,
    short_uuid: String,
    project: Option<String>,
    host: Option<String>,
    flavor: Option<String>,
    vcpus: Option<u32>,
    memory_gb: Option<String>,
    disk_gb: Option<String>,
    started: String,
    ended: Option<String>,
    state: &'static str,
    hours: String,
    kwh: String,
    gpu_kwh: Option<String>,
    carbon_g: Option<String>,
    embodied_g: Option<String>,
    total_g: Option<String>,
    quality: &'static str,
}

impl VmRow {
    fn new(vm: &VmUsage) -> Self {
        Self {
            name: vm.name.clone(),
            uuid: vm.instance_id.clone(),
            short_uuid: fit(&vm.instance_id, 9),
            project: vm.project_name.clone().or_else(|| vm.tenant_id.clone()),
            host: vm.host.clone(),
            flavor: vm.flavor.clone(),
            vcpus: vm.vcpus,
            memory_gb: vm.memory_mb.map(|m| fixed(m as f64 / 1024.0, 1)),
            disk_gb: vm.local_gb.map(|v| fixed(v, 1)),
            started: time(vm.started_ms),
            ended: vm.ended_ms.map(time),
            state: vm.state,
            hours: fixed(vm.hours, 1),
            kwh: fixed(vm.kwh(), 3),
            gpu_kwh: vm.known.gpu_kwh().map(|v| fixed(v, 3)),
            carbon_g: vm.carbon_g.map(|v| fixed(v, 1)),
            embodied_g: vm.known.embodied_g().map(|v| fixed(v, 1)),
            total_g: vm.known.total_g().map(|v| fixed(v, 1)),
            quality: if vm.estimated {
                "estimated"
            } else {
                "measured"
            },
        }
    }
}

/// The colour of the `i`th group.
fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The shortest text that parses back to `v` exactly.
fn exact(v: f64) -> String {
    v.to_string()
}

fn fixed(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// An SVG coordinate, px.
fn coord(v: f64) -> String {
    format!("{v:.2}")
}

/// A gridline's value without trailing zeros (`0.25`, `10`).
fn trim(v: f64) -> String {
    let text = format!("{v:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `2025-06-01`, the UTC date of `ms`.
fn date(ms: i64) -> String {
    time(ms)[..10].to_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::report::{By, Group};
    use crate::window::Window;

    fn report(project: &str) -> Report {
        let totals = Totals {
            vms: 1,
            hours: 30.0,
            joules: 7.2e6,
            carbon_g: Some(300.0),
            daily_joules: BTreeMap::from([(0, 3.6e6), (DAY_MS, 3.6e6)]),
            ..Totals::default()
        };
        let vm = VmUsage {
            instance_id: "vm-1".into(),
            name: Some("<b>web</b>".into()),
            tenant_id: Some(project.into()),
            joules: 7.2e6,
            ..VmUsage::default()
        };
        Report {
            period: Window {
                start_ms: 0,
                end_ms: 2 * DAY_MS,
            },
            by: By::Project,
            groups: vec![Group {
                key: project.into(),
                label: None,
                vms: vec![vm],
                totals: totals.clone(),
            }],
            totals,
            host_joules: Some(1.44e7),
        }
    }

    fn page(report: &Report) -> String {
        let mut out = Vec::new();
        write(report, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_text_is_escaped() {
        let html = page(&report("p<1>&\"x\""));
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("p<1>"), "{html}");
        assert!(html.contains("p&lt;1&gt;&amp;&quot;x&quot;"), "{html}");
        assert!(html.contains("&lt;b&gt;web&lt;&#x2f;b&gt;"), "{html}");
    }

    #[test]
    fn bars_carry_their_exact_values_and_the_page_loads_nothing() {
        let html = page(&report("p1"));
        assert!(html.contains(r#"id="energy-0""#), "{html}");
        assert!(html.contains(r#"data-value="2""#), "{html}");
        assert!(html.contains(r#"data-value="300""#), "{html}");
        assert!(html.contains(r#"id="day-1-0""#), "{html}");
        assert_eq!(html.matches(r#"data-value="1""#).count(), 2, "{html}");
        for loads in ["src=", "href=", "url(", "@import", "<script"] {
            assert!(!html.contains(loads), "{loads} in {html}");
        }
    }

    #[test]
    fn an_empty_report_is_a_page_too() {
        let report = crate::report::Aggregator::default().finish(
            Window {
                start_ms: 0,
                end_ms: DAY_MS,
            },
            By::Vm,
            &HashMap::new(),
        );
        let html = page(&report);
        assert!(html.contains("No VM had energy in the period"), "{html}");
    }

    #[test]
    fn scales_are_round() {
        assert_eq!(nice_scale(0.0), (1.0, 1.0));
        assert_eq!(nice_scale(7.3), (2.0, 8.0));
        assert_eq!(nice_scale(100.0), (20.0, 100.0));
        let (step, top) = nice_scale(0.042);
        assert!((step - 0.01).abs() < 1e-12 && (top - 0.05).abs() < 1e-12);
    }
}
