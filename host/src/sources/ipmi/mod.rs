//! Local wall-power meters: IPMI DCMI through a command (`ipmitool dcmi power
//! reading` by default), behind [`PowerMeter`] so tests feed their own.

/// A wall-power meter read now.
pub trait PowerMeter: Send {
    /// The host's power now, watts.
    fn watts(&mut self) -> Result<f64, String>;
}

/// `ipmitool dcmi power reading` (or any command printing
/// `Instantaneous power reading: <N> Watts`).
pub struct IpmiCommand {
    argv: Vec<String>,
}

impl IpmiCommand {
    /// Runs `argv` (program and arguments, no shell) at each reading.
    pub fn new(argv: Vec<String>) -> Self {
        Self { argv }
    }
}

impl PowerMeter for IpmiCommand {
    fn watts(&mut self) -> Result<f64, String> {
        let out = super::command::run(&self.argv, "[host_power] command", "ipmitool")?;
        parse_dcmi(&out).ok_or_else(|| {
            format!(
                "`{}` printed no `Instantaneous power reading: <N> Watts` line: {}",
                self.argv.join(" "),
                out.trim()
            )
        })
    }
}

/// The watts of `ipmitool dcmi power reading`'s output.
pub fn parse_dcmi(output: &str) -> Option<f64> {
    output.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if !key
            .trim()
            .eq_ignore_ascii_case("Instantaneous power reading")
        {
            return None;
        }
        let watts: f64 = value.split_whitespace().next()?.parse().ok()?;
        (watts.is_finite() && watts >= 0.0).then_some(watts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ipmitool_dcmi_output() {
        let out = "\n    Instantaneous power reading:                   220 Watts\n    \
                   Minimum during sampling period:                 92 Watts\n    \
                   Power reading state is:                   activated\n";
        assert_eq!(parse_dcmi(out), Some(220.0));
        assert_eq!(parse_dcmi("Power reading state is: deactivated"), None);
        assert_eq!(
            parse_dcmi("Instantaneous power reading: -3 Watts"),
            None,
            "a negative reading is no reading"
        );
    }

    #[test]
    fn a_command_that_fails_or_is_missing_is_named() {
        let err = IpmiCommand::new(vec!["/nonexistent/ipmitool".into()])
            .watts()
            .unwrap_err();
        assert!(err.contains("/nonexistent/ipmitool"), "{err}");
        let err = IpmiCommand::new(vec!["false".into()]).watts().unwrap_err();
        assert!(err.contains("`false` failed"), "{err}");
        let watts = IpmiCommand::new(vec![
            "echo".into(),
            "Instantaneous power reading: 181 Watts".into(),
        ])
        .watts();
        assert_eq!(watts, Ok(181.0));
    }
}
