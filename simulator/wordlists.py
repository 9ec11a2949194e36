"""Small built-in vocabularies for synthetic profiles.

Kept ASCII so shorthand names derive from names without transliteration. The lists are
deliberately varied enough for search tests (countries, departments, management levels, skills)
and deliberately small enough to read.
"""

from __future__ import annotations

from typing import NamedTuple

FIRST_NAMES = (
    "anna", "james", "maria", "john", "laura", "michael", "sofia", "david", "emma", "daniel",
    "olivia", "thomas", "mia", "lukas", "julia", "paul", "lina", "felix", "sara", "jonas",
    "elena", "marco", "chloe", "lucas", "hannah", "noah", "ava", "leon", "clara", "adam",
    "priya", "arjun", "mei", "kenji", "aisha", "omar", "fatima", "ivan", "olga", "pedro",
    "ines", "tomas", "ruta", "mantas", "greta", "matteo", "giulia", "pierre", "camille", "erik",
    "ingrid", "sean", "niamh", "carlos", "lucia", "ryan", "grace", "ethan", "zoe", "victor",
)  # fmt: skip

LAST_NAMES = (
    "smith", "johnson", "miller", "brown", "garcia", "martinez", "davis", "wilson", "taylor",
    "anderson", "thomas", "moore", "jackson", "martin", "lee", "walker", "hall", "young",
    "mueller", "schmidt", "schneider", "fischer", "weber", "becker", "wagner", "hoffmann",
    "rossi", "bianchi", "dubois", "laurent", "novak", "kowalski", "petrov", "ivanova",
    "kazlauskas", "jankauskas", "sharma", "patel", "tanaka", "sato", "kim", "park", "chen",
    "wang", "silva", "santos", "oliveira", "fernandez", "lopez", "murphy", "kelly", "obrien",
    "nielsen", "hansen", "berg", "larsen", "andersson", "virtanen", "costa", "haddad",
)  # fmt: skip

MIDDLE_NAMES = ("a.", "j.", "marie", "lee", "k.", "rose", "m.", "james")


class Place(NamedTuple):
    city: str
    state: str | None
    country: str
    iso2: str
    iso3: str
    regions: tuple[str, ...]


_EMEA = ("Europe", "EMEA")
_AMER = ("Northern America", "AMER")
_APAC = ("Asia", "APAC")

PLACES = (
    Place("Berlin", "Berlin", "Germany", "DE", "DEU", _EMEA),
    Place("Munich", "Bavaria", "Germany", "DE", "DEU", _EMEA),
    Place("Hamburg", "Hamburg", "Germany", "DE", "DEU", _EMEA),
    Place("San Francisco", "California", "United States", "US", "USA", _AMER),
    Place("New York", "New York", "United States", "US", "USA", _AMER),
    Place("Austin", "Texas", "United States", "US", "USA", _AMER),
    Place("Seattle", "Washington", "United States", "US", "USA", _AMER),
    Place("Sunnyvale", "California", "United States", "US", "USA", _AMER),
    Place("London", "England", "United Kingdom", "GB", "GBR", _EMEA),
    Place("Paris", "Ile-de-France", "France", "FR", "FRA", _EMEA),
    Place("Amsterdam", "North Holland", "Netherlands", "NL", "NLD", _EMEA),
    Place("Vilnius", "Vilnius County", "Lithuania", "LT", "LTU", _EMEA),
    Place("Warsaw", "Masovia", "Poland", "PL", "POL", _EMEA),
    Place("Madrid", "Community of Madrid", "Spain", "ES", "ESP", _EMEA),
    Place("Toronto", "Ontario", "Canada", "CA", "CAN", _AMER),
    Place("Bengaluru", "Karnataka", "India", "IN", "IND", _APAC),
    Place("Singapore", None, "Singapore", "SG", "SGP", _APAC),
    Place("Sydney", "New South Wales", "Australia", "AU", "AUS", ("Oceania", "APAC")),
    Place("Sao Paulo", "Sao Paulo", "Brazil", "BR", "BRA", ("Latin America", "AMER")),
)


class Company(NamedTuple):
    name: str
    slug: str
    domain: str
    industry: str
    size_range: str
    employees: int
    kind: str
    founded: str | None
    hq: int  # index into PLACES


COMPANIES = (
    Company("Acme Analytics", "acme-analytics", "acme-analytics.com", "Software Development",
            "1,001-5,000 employees", 2300, "Privately Held", "2009", 0),
    Company("Globex", "globex", "globex.com", "IT Services and IT Consulting",
            "10,001+ employees", 48000, "Public Company", "1987", 4),
    Company("Initech", "initech", "initech.io", "Software Development",
            "201-500 employees", 340, "Privately Held", "2014", 5),
    Company("Umbrella Health", "umbrella-health", "umbrellahealth.com", "Hospitals and Health Care",
            "5,001-10,000 employees", 7200, "Public Company", "1995", 8),
    Company("Stark Mobility", "stark-mobility", "starkmobility.de", "Motor Vehicle Manufacturing",
            "10,001+ employees", 21000, "Public Company", "1961", 1),
    Company("Wayne Capital", "wayne-capital", "waynecapital.com", "Financial Services",
            "501-1,000 employees", 780, "Privately Held", "2001", 4),
    Company("Hooli", "hooli", "hooli.xyz", "Technology, Information and Internet",
            "10,001+ employees", 64000, "Public Company", "1998", 7),
    Company("Pied Piper", "pied-piper", "piedpiper.com", "Software Development",
            "11-50 employees", 35, "Privately Held", "2014", 3),
    Company("Nordlicht Energie", "nordlicht-energie", "nordlicht-energie.de",
            "Renewable Energy Power Generation", "201-500 employees", 260, "Privately Held",
            "2010", 2),
    Company("Baltic Data", "baltic-data", "balticdata.lt", "IT Services and IT Consulting",
            "51-200 employees", 120, "Privately Held", "2016", 11),
    Company("Vistula Logistics", "vistula-logistics", "vistula.pl", "Transportation and Logistics",
            "1,001-5,000 employees", 1800, "Privately Held", "1999", 12),
    Company("Maple Retail", "maple-retail", "mapleretail.ca", "Retail", "5,001-10,000 employees",
            6100, "Public Company", "1975", 14),
    Company("Lotus Systems", "lotus-systems", "lotussystems.in", "Software Development",
            "10,001+ employees", 15500, "Public Company", "1992", 15),
    Company("Merlion Bank", "merlion-bank", "merlionbank.sg", "Banking", "10,001+ employees",
            30000, "Public Company", "1968", 16),
    Company("Coral Media", "coral-media", "coralmedia.com.au", "Media Production",
            "51-200 employees", 90, "Privately Held", None, 17),
    Company("Ipanema Foods", "ipanema-foods", "ipanemafoods.com.br", "Food and Beverage Services",
            "1,001-5,000 employees", 2600, "Privately Held", "1983", 18),
    Company("Lumiere Conseil", "lumiere-conseil", "lumiere-conseil.fr", "Business Consulting",
            "11-50 employees", 28, "Partnership", "2018", 9),
    Company("Tulip Robotics", "tulip-robotics", "tuliprobotics.nl", "Automation Machinery",
            "201-500 employees", 410, "Privately Held", "2012", 10),
    Company("Iberia Solar", "iberia-solar", "iberiasolar.es", "Renewable Energy Power Generation",
            "51-200 employees", 150, "Privately Held", "2015", 13),
    Company("Cascade Cloud", "cascade-cloud", "cascadecloud.com", "Software Development",
            "501-1,000 employees", 940, "Privately Held", "2011", 6),
)  # fmt: skip


class Department(NamedTuple):
    name: str
    function: str  # how the function reads in "Head of ..." titles
    titles: tuple[str, ...]
    chief: str
    skills: tuple[str, ...]


DEPARTMENTS = (
    Department("Engineering and Technical", "Engineering",
               ("Software Engineer", "Backend Developer", "Data Engineer", "DevOps Engineer",
                "Frontend Developer", "QA Engineer"), "Chief Technology Officer",
               ("python", "java", "kubernetes", "aws", "sql", "docker", "typescript", "go")),
    Department("Sales", "Sales", ("Account Executive", "Sales Representative",
               "Business Development Representative"), "Chief Revenue Officer",
               ("salesforce", "negotiation", "b2b sales", "lead generation", "crm")),
    Department("Marketing", "Marketing", ("Marketing Specialist", "Content Marketer",
               "SEO Specialist", "Growth Marketer"), "Chief Marketing Officer",
               ("seo", "content strategy", "google analytics", "social media", "copywriting")),
    Department("Finance & Accounting", "Finance", ("Accountant", "Financial Analyst",
               "Controller"), "Chief Financial Officer",
               ("financial modeling", "excel", "ifrs", "budgeting", "accounting")),
    Department("Human Resources", "People", ("Recruiter", "HR Generalist",
               "Talent Acquisition Specialist"), "Chief People Officer",
               ("recruiting", "onboarding", "employee relations", "hris")),
    Department("Operations", "Operations", ("Operations Analyst", "Project Coordinator",
               "Supply Chain Analyst"), "Chief Operating Officer",
               ("project management", "lean", "logistics", "process improvement")),
    Department("Product Management", "Product", ("Product Manager", "Product Owner",
               "Business Analyst"), "Chief Product Officer",
               ("product strategy", "agile", "scrum", "user research", "roadmapping")),
    Department("Research", "Research", ("Research Scientist", "Data Scientist",
               "Research Engineer"), "Chief Scientific Officer",
               ("machine learning", "statistics", "pytorch", "r", "experimental design")),
)  # fmt: skip

# Weights are rough guesses at a real population: many specialists, few founders.
MANAGEMENT_LEVELS = (
    ("Specialist", 40), ("Senior", 20), ("Manager", 14), ("Director", 7), ("Head", 4),
    ("Intern", 4), ("C-Level", 3), ("President/Vice President", 3), ("Owner", 2),
    ("Founder", 2), ("Partner", 1),
)  # fmt: skip

DECISION_MAKER_LEVELS = frozenset(
    {"Manager", "Director", "Head", "C-Level", "President/Vice President", "Owner", "Founder",
     "Partner"}
)  # fmt: skip

GENERAL_SKILLS = (
    "communication", "leadership", "teamwork", "problem solving", "english", "presentation",
    "stakeholder management", "microsoft office",
)  # fmt: skip


class School(NamedTuple):
    name: str
    slug: str
    place: int  # index into PLACES


SCHOOLS = (
    School("Technical University of Munich", "tum", 1),
    School("Humboldt University of Berlin", "humboldt-universitat-zu-berlin", 0),
    School("Stanford University", "stanford-university", 7),
    School("New York University", "nyu", 4),
    School("University of Texas at Austin", "ut-austin", 5),
    School("Imperial College London", "imperial-college-london", 8),
    School("Sorbonne University", "sorbonne-universite", 9),
    School("Vilnius University", "vilnius-university", 11),
    School("University of Toronto", "university-of-toronto", 14),
    School("Indian Institute of Science", "iisc", 15),
    School("National University of Singapore", "nus", 16),
    School("University of Sao Paulo", "usp", 18),
)

DEGREES = (
    "Bachelor of Science, Computer Science", "Master of Science, Computer Science",
    "Bachelor of Arts, Economics", "Master of Business Administration (MBA)",
    "Bachelor of Engineering, Mechanical Engineering", "Master of Science, Finance",
    "Bachelor of Arts, Psychology", "PhD, Physics",
)  # fmt: skip

LANGUAGES = ("English", "German", "French", "Spanish", "Lithuanian", "Polish", "Hindi", "Japanese")
PROFICIENCIES = ("Native or bilingual proficiency", "Full professional proficiency",
                 "Professional working proficiency", "Elementary proficiency")  # fmt: skip

CERTIFICATIONS = (
    ("AWS Certified Solutions Architect", "Amazon Web Services"),
    ("Professional Scrum Master I", "Scrum.org"),
    ("Google Analytics Certification", "Google"),
    ("PMP", "Project Management Institute"),
    ("Certified Kubernetes Administrator", "The Linux Foundation"),
)

HEADLINE_TAILS = (
    "Building great teams", "Passionate about data", "Always learning", "Open to new challenges",
    "Turning ideas into products", "Helping customers grow",
)  # fmt: skip
