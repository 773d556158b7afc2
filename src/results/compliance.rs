//! The compliance controls a run's evidence supports: a fixed mapping,
//! the same in every report and documented in docs/evidence.md. It says
//! what the evidence can be used for; it does not claim a control is met.

use serde::Serialize;

/// One control and why this evidence bears on it.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Control {
    pub framework: &'static str,
    pub control: &'static str,
    pub title: &'static str,
    /// Which part of the run's evidence supports the control.
    pub evidence: &'static str,
}

const BOUNDARY: &str = "the scan results show which ports and services answer at the boundary, probed under a recorded authorization";
const AUTHORIZED: &str = "the scope file (its SHA-256), engagement, validity window, rate ceiling and operator recorded in the report and the audit log show the testing was authorized and bounded";
const MONITORING: &str = "the capture of every packet sent and received, its analysis and anomaly findings, and the hash-chained audit log";

/// The mapping, in report order.
pub const CONTROLS: [Control; 9] = [
    Control {
        framework: "SOC 2",
        control: "CC6.6",
        title: "Logical access security measures against threats from sources outside the system boundaries",
        evidence: BOUNDARY,
    },
    Control {
        framework: "SOC 2",
        control: "CC6.7",
        title: "Restriction of the transmission, movement and removal of information",
        evidence: MONITORING,
    },
    Control {
        framework: "ISO/IEC 27001:2013",
        control: "A.13.1",
        title: "Network security management",
        evidence: BOUNDARY,
    },
    Control {
        framework: "ISO/IEC 27001:2013",
        control: "A.13.2",
        title: "Information transfer",
        evidence: MONITORING,
    },
    Control {
        framework: "NIST SP 800-53 Rev. 5",
        control: "SC-7",
        title: "Boundary Protection",
        evidence: BOUNDARY,
    },
    Control {
        framework: "NIST SP 800-53 Rev. 5",
        control: "AC-17",
        title: "Remote Access",
        evidence: "open remote-access ports (SSH, RDP, VNC, telnet and others) appear in the scan results per host",
    },
    Control {
        framework: "NIST SP 800-53 Rev. 5",
        control: "SI-4",
        title: "System Monitoring",
        evidence: MONITORING,
    },
    Control {
        framework: "NIST CSF 1.1",
        control: "PR.AC",
        title: "Identity Management, Authentication and Access Control",
        evidence: AUTHORIZED,
    },
    Control {
        framework: "NIST CSF 1.1",
        control: "PR.PT",
        title: "Protective Technology",
        evidence: BOUNDARY,
    },
];

/// The mapping as a report records it.
pub fn controls() -> Vec<super::ComplianceControl> {
    CONTROLS
        .iter()
        .map(|c| super::ComplianceControl {
            framework: c.framework.to_string(),
            control: c.control.to_string(),
            title: c.title.to_string(),
            evidence: c.evidence.to_string(),
        })
        .collect()
}
