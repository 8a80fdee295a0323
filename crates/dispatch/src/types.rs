//! Incident types (APCO ANS 2.103.1 common incident type codes), priorities and unit types.

use serde::{Deserialize, Serialize};

/// Every APCO ANS 2.103.1-2012 common incident type code, as listed in the NENA EIDO schema
/// (`shared/eido/NIEMComponents/apco.yaml`, `apcoIncidentCategoryCodeSimpleType`).
pub const APCO_CODES: &[&str] = &[
    "911H", "911OPN", "ABDOM", "ABDUCTF", "ABDUCTNF", "ABUSE", "ACCIND", "ADMIN", "AIR", "ALIEN", "ALLERGIC", "ALRBA",
    "ALRBOX", "ALRBS", "ALRCO", "ALRCO2", "ALRDEFIB", "ALRF", "ALRGAS", "ALRHEAT", "ALRKPAD", "ALRMED", "ALRNGAS", "ALRPANA",
    "ALRPANS", "ALRPROPN", "ALRPULL", "ALRROBA", "ALRROBS", "ALRU", "ALRVEH", "ALRWTR", "ALS", "ANIMAL", "ASSAULT", "ASSIST",
    "ATL", "BACK", "BARICADE", "BIO", "BITE", "BLDCLPSE", "BLEEDING", "BLS", "BOMB", "BRGCLPSE", "BURGLARY", "BURN",
    "CARDIAC", "CARJACK", "CHEMICAL", "CHESPAIN", "CHOKE", "CITASST", "CIVDIS", "CIVIL", "CNTRFT", "CRIMPS", "CRIMTRAF", "CURFEW",
    "DEATH", "DEATHNTF", "DIABETIC", "DISORD", "DISVEH", "DROWN", "DRUGPAR", "DRUGS", "DUI", "DVA", "DVNA", "EDP",
    "ELEC", "ELECHZD", "ELUDING", "ENTRAP", "ESCAPE", "EXPLOS", "EXPOSURE", "EXTORT", "EYE", "FAIRC", "FALL", "FAPT",
    "FARSON", "FBRUSH", "FELEC", "FFUEL", "FIGHT", "FIREWRKS", "FMARINE", "FORCENTR", "FOTHER", "FRAUD", "FREPORT", "FSMOKE",
    "FSTRU", "FTRAILER", "FTRAIN", "FTRASH", "FTRUCK", "FUNK", "FVEH", "GASLEAK", "HARR", "HAZMAT", "HEADACHE", "HEMRG",
    "HOMICIDE", "HOSTAGE", "INDECENT", "INFO", "INTERNET", "INTOX", "INVEST", "LARCENY", "LIQUOR", "MAJORINC", "MAYDAY", "MCI",
    "MISBOATR", "MISCON", "MVA", "MVAHR", "MVAINJY", "MVAUNK", "NEGLECT", "NOISE", "OD", "ODOR", "OPEN", "ORDERV",
    "PANDEMIC", "PARKING", "PERFND", "PERMISS", "PERSUSP", "PERUNCON", "PERWANT", "PHANDLE", "PREG", "PROPFND", "PROPLOST", "PROPSTLN",
    "PUBWKS", "PURSUIT", "RADIAT", "RECKDRV", "REPO", "RESCUE", "RESIST", "RESP", "RESPARR", "ROBBERY", "RUNAWAY", "SAR",
    "SEIZURE", "SEXOFFNS", "SHOOT", "SHOPLIFT", "SICK", "SMOKING", "STABBING", "STDBY", "STROKE", "SUBJSTP", "SUICIDE", "SUICTHRT",
    "SUSP", "TERROR", "THAZ", "THREATS", "TOW", "TRAIN", "TRAINDRL", "TRANSFER", "TRAUMA", "TRAUMAP", "TRESPASS", "TROUBLE",
    "TRUANT", "TSTOP", "VANDAL", "VEHABND", "VEHASST", "VEHLOCK", "VEHREC", "VEHSTLN", "VEHSUSP", "VICE", "WARRANT", "WATER",
    "WEAPON", "WELFARE", "WILDLIFE", "WIRES", "XTRACATE",
];

/// Whether `code` is an APCO common incident type code.
pub fn is_apco_code(code: &str) -> bool {
    APCO_CODES.contains(&code)
}

/// Agency priority, P1 (highest) to P4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ts_rs::TS)]
pub enum Priority {
    /// Life threat now: respond with lights and siren.
    P1,
    /// Urgent: a possible threat to life or property; respond without delay.
    P2,
    /// Prompt: no threat to life; respond as soon as units allow.
    P3,
    /// Routine: may be queued or handled by report.
    P4,
}

impl Priority {
    /// The EIDO common priority number, 0–10 with 10 highest (NENA-STA-021): P1 10, P2 7, P3 4, P4 1.
    pub fn eido_number(self) -> u8 {
        match self {
            Priority::P1 => 10,
            Priority::P2 => 7,
            Priority::P3 => 4,
            Priority::P4 => 1,
        }
    }

    /// Spoken in a radio message: "priority one".
    pub fn spoken(self) -> &'static str {
        match self {
            Priority::P1 => "priority one",
            Priority::P2 => "priority two",
            Priority::P3 => "priority three",
            Priority::P4 => "priority four",
        }
    }

    /// `P1` … `P4`.
    pub fn label(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
        }
    }

    /// Parses `P1`…`P4` (or `1`…`4`).
    pub fn parse(s: &str) -> Option<Priority> {
        match s.trim().trim_start_matches(['P', 'p']) {
            "1" => Some(Priority::P1),
            "2" => Some(Priority::P2),
            "3" => Some(Priority::P3),
            "4" => Some(Priority::P4),
            _ => None,
        }
    }
}

/// Kinds of response units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum UnitType {
    /// Fire engine (pumper).
    Engine,
    /// Ladder truck.
    Ladder,
    /// Advanced life support ambulance.
    Medic,
    /// Rescue (extrication, technical rescue).
    Rescue,
    /// Law enforcement patrol car.
    Patrol,
    /// Hazardous materials unit.
    Hazmat,
    /// Battalion chief (command).
    Battalion,
}

impl UnitType {
    /// How the unit type is spoken: "Engine".
    pub fn name(self) -> &'static str {
        match self {
            UnitType::Engine => "Engine",
            UnitType::Ladder => "Ladder",
            UnitType::Medic => "Medic",
            UnitType::Rescue => "Rescue",
            UnitType::Patrol => "Patrol",
            UnitType::Hazmat => "Hazmat",
            UnitType::Battalion => "Battalion",
        }
    }
}

/// Broad discipline of an incident type, for cross-checking extractors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discipline {
    /// Fire service.
    Fire,
    /// Emergency medical services.
    Medical,
    /// Law enforcement.
    Police,
    /// Traffic (vehicle accidents).
    Traffic,
    /// Anything else.
    Other,
}

/// What a dispatch centre knows about an incident type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentType {
    /// APCO code.
    pub code: &'static str,
    /// Plain words, as spoken on the radio: "structure fire".
    pub text: &'static str,
    /// Its discipline.
    pub discipline: Discipline,
    /// Priority when nothing else is known.
    pub priority: Priority,
    /// Unit types recommended for it.
    pub units: &'static [UnitType],
}

use Discipline::*;
use Priority::*;
use UnitType::*;

/// The types Watchfloor knows well (extraction maps to these; any other APCO code is accepted
/// from the model or a supervisor, with its code as text and P2).
pub const KNOWN_TYPES: &[IncidentType] = &[
    IncidentType { code: "FSTRU", text: "structure fire", discipline: Fire, priority: P1, units: &[Engine, Engine, Ladder, Medic, Battalion] },
    IncidentType { code: "FVEH", text: "vehicle fire", discipline: Fire, priority: P2, units: &[Engine] },
    IncidentType { code: "FBRUSH", text: "brush fire", discipline: Fire, priority: P2, units: &[Engine, Engine] },
    IncidentType { code: "FSMOKE", text: "smoke investigation", discipline: Fire, priority: P2, units: &[Engine] },
    IncidentType { code: "FUNK", text: "fire, unknown type", discipline: Fire, priority: P1, units: &[Engine, Ladder] },
    IncidentType { code: "GASLEAK", text: "gas leak", discipline: Fire, priority: P2, units: &[Engine, Hazmat] },
    IncidentType { code: "HAZMAT", text: "hazardous materials", discipline: Fire, priority: P1, units: &[Engine, Hazmat, Battalion] },
    IncidentType { code: "CARDIAC", text: "cardiac arrest", discipline: Medical, priority: P1, units: &[Medic, Engine] },
    IncidentType { code: "CHESPAIN", text: "chest pain", discipline: Medical, priority: P1, units: &[Medic] },
    IncidentType { code: "RESP", text: "breathing problem", discipline: Medical, priority: P1, units: &[Medic, Engine] },
    IncidentType { code: "PERUNCON", text: "unconscious person", discipline: Medical, priority: P1, units: &[Medic, Engine] },
    IncidentType { code: "CHOKE", text: "choking", discipline: Medical, priority: P1, units: &[Medic, Engine] },
    IncidentType { code: "STROKE", text: "stroke", discipline: Medical, priority: P1, units: &[Medic] },
    IncidentType { code: "SEIZURE", text: "seizure", discipline: Medical, priority: P2, units: &[Medic] },
    IncidentType { code: "OD", text: "overdose", discipline: Medical, priority: P1, units: &[Medic, Patrol] },
    IncidentType { code: "BLEEDING", text: "bleeding", discipline: Medical, priority: P2, units: &[Medic] },
    IncidentType { code: "FALL", text: "fall", discipline: Medical, priority: P3, units: &[Medic] },
    IncidentType { code: "DROWN", text: "drowning", discipline: Medical, priority: P1, units: &[Medic, Rescue] },
    IncidentType { code: "SICK", text: "sick person", discipline: Medical, priority: P3, units: &[Medic] },
    IncidentType { code: "MVAINJY", text: "vehicle accident with injuries", discipline: Traffic, priority: P1, units: &[Medic, Engine, Patrol] },
    IncidentType { code: "MVA", text: "vehicle accident", discipline: Traffic, priority: P2, units: &[Patrol, Medic] },
    IncidentType { code: "MVAUNK", text: "vehicle accident, injuries unknown", discipline: Traffic, priority: P2, units: &[Patrol, Medic] },
    IncidentType { code: "ENTRAP", text: "entrapment", discipline: Fire, priority: P1, units: &[Rescue, Engine, Medic] },
    IncidentType { code: "SHOOT", text: "shooting", discipline: Police, priority: P1, units: &[Patrol, Patrol, Medic] },
    IncidentType { code: "STABBING", text: "stabbing", discipline: Police, priority: P1, units: &[Patrol, Medic] },
    IncidentType { code: "WEAPON", text: "person with a weapon", discipline: Police, priority: P1, units: &[Patrol, Patrol] },
    IncidentType { code: "ASSAULT", text: "assault", discipline: Police, priority: P2, units: &[Patrol, Medic] },
    IncidentType { code: "ROBBERY", text: "robbery", discipline: Police, priority: P1, units: &[Patrol, Patrol] },
    IncidentType { code: "BURGLARY", text: "burglary", discipline: Police, priority: P2, units: &[Patrol] },
    IncidentType { code: "DVA", text: "domestic violence", discipline: Police, priority: P1, units: &[Patrol, Patrol] },
    IncidentType { code: "SUSP", text: "suspicious circumstances", discipline: Police, priority: P3, units: &[Patrol] },
    IncidentType { code: "WELFARE", text: "welfare check", discipline: Police, priority: P3, units: &[Patrol] },
];

/// What is known of an APCO code: the table entry, or a generic one for other valid codes.
pub fn incident_type(code: &str) -> Option<IncidentType> {
    if let Some(t) = KNOWN_TYPES.iter().find(|t| t.code == code) {
        return Some(*t);
    }
    APCO_CODES.iter().find(|c| **c == code).map(|c| IncidentType { code: c, text: c, discipline: Other, priority: P2, units: &[] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_types_are_apco_codes() {
        for t in KNOWN_TYPES {
            assert!(is_apco_code(t.code), "{}", t.code);
        }
        assert_eq!(incident_type("FSTRU").unwrap().text, "structure fire");
        assert_eq!(incident_type("TOW").unwrap().priority, Priority::P2);
        assert!(incident_type("NOPE").is_none());
        assert_eq!(Priority::parse("p1"), Some(Priority::P1));
        assert_eq!(Priority::P1.eido_number(), 10);
    }
}
