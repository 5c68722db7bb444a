"""Word lists the demo generator draws fictional names from.

Small and hand-made rather than a Faker dependency: the demo needs a few hundred
plausible, deterministic names, and every domain ends in the reserved `.example`
top-level domain so no generated address can belong to a real company.
"""

from __future__ import annotations

FIRST_NAMES = (
    "Aaron", "Abigail", "Adrian", "Aisha", "Alan", "Alice", "Amara", "Andre", "Anita", "Arjun",
    "Beatrice", "Ben", "Bianca", "Caleb", "Carla", "Chen", "Chloe", "Colin", "Dalia", "Daniel",
    "Dmitri", "Elena", "Elliot", "Emeka", "Erin", "Felix", "Fiona", "Gabriel", "Grace", "Hassan",
    "Helen", "Hugo", "Ines", "Isaac", "Jade", "Jamal", "Joanna", "Jonas", "Kai", "Karen",
    "Keiko", "Leo", "Lila", "Luis", "Malik", "Marta", "Mateo", "Mia", "Nadia", "Nathan",
    "Olivia", "Oscar", "Paula", "Pedro", "Priya", "Quinn", "Rafael", "Rosa", "Ruth", "Samir",
    "Sara", "Simon", "Sofia", "Tariq", "Tessa", "Theo", "Uma", "Victor", "Wendy", "Yara",
    "Yusuf", "Zoe",
)  # fmt: skip

LAST_NAMES = (
    "Abbott", "Adeyemi", "Alvarez", "Andersen", "Baker", "Banerjee", "Becker", "Bishop", "Brennan",
    "Campbell", "Castillo", "Chandra", "Cole", "Costa", "Dawson", "Diaz", "Dubois", "Ellis",
    "Erikson", "Farah", "Fischer", "Foster", "Garcia", "Gill", "Gordon", "Hale", "Hart", "Hoffman",
    "Ibrahim", "Ito", "Jensen", "Jovanovic", "Kaur", "Keller", "Khan", "Kowalski", "Lambert",
    "Larsen", "Lopez", "Mahmoud", "Marsh", "Mendes", "Moreau", "Nakamura", "Navarro", "Novak",
    "Obi", "Olsen", "Park", "Perez", "Quinlan", "Reed", "Rossi", "Sato", "Schmidt", "Silva",
    "Sorensen", "Tanaka", "Thompson", "Turner", "Varga", "Walsh", "Weber", "Xu", "Young", "Zhang",
)  # fmt: skip

# Account names are STEM_A + STEM_B + an industry word: "Bluepeak Logistics".
STEM_A = (
    "Blue", "North", "Silver", "Iron", "Bright", "Clear", "Red", "Green", "Stone", "Oak",
    "Summit", "Harbor", "Cedar", "Falcon", "Golden", "Maple", "River", "Swift", "True", "West",
    "Crystal", "Eagle", "Pine", "Sun",
)  # fmt: skip
STEM_B = (
    "peak", "field", "stone", "wave", "bridge", "gate", "line", "point", "crest", "wood",
    "brook", "haven", "ridge", "light", "works", "path", "forge", "vale", "port", "spring",
)  # fmt: skip

INDUSTRIES = {
    "Logistics": "Transportation & logistics",
    "Health": "Healthcare",
    "Foods": "Food & beverage",
    "Energy": "Energy & utilities",
    "Systems": "Software",
    "Analytics": "Software",
    "Bank": "Financial services",
    "Insurance": "Financial services",
    "Retail": "Retail",
    "Manufacturing": "Manufacturing",
    "Labs": "Life sciences",
    "Telecom": "Telecommunications",
    "Media": "Media & publishing",
    "Construction": "Construction",
}

CONTACT_TITLES = (
    "Chief Information Officer",
    "VP Operations",
    "Head of Procurement",
    "IT Director",
    "Finance Director",
    "Operations Manager",
    "Head of Sales Operations",
    "Project Lead",
    "Chief Financial Officer",
    "Procurement Manager",
)

# name, code, family, list price
PRODUCTS = (
    ("Platform licence (annual)", "PLT-1Y", "Software", 24000),
    ("Analytics add-on", "ANL-1Y", "Software", 9000),
    ("Integration pack", "INT-PK", "Software", 6000),
    ("Implementation services", "SVC-IMP", "Services", 15000),
    ("Training day", "SVC-TRN", "Services", 2500),
    ("Premium support", "SUP-PRM", "Support", 5000),
)

DEAL_PURPOSES = (
    "Platform rollout",
    "Analytics expansion",
    "Renewal",
    "Pilot",
    "Regional rollout",
    "Integration project",
    "Upgrade",
    "New business unit",
)

LEAD_SOURCES = ("Inbound", "Outbound", "Referral", "Event", "Partner")
COMPETITORS = ("Corvid Systems", "Halyard CRM", "Quillstack", "In-house build", "Status quo")
LOST_REASONS = (
    "Price: chose a cheaper offer",
    "Went with a competitor",
    "No decision: project shelved",
    "Budget cut this year",
    "Timing: revisit next year",
    "Missing feature",
)

NEXT_STEPS = {
    "Prospecting": ("Intro call", "Send overview deck", "Book discovery call"),
    "Qualification": ("Confirm budget owner", "Qualification call", "Map the buying committee"),
    "Discovery": ("Discovery workshop", "Technical deep dive", "Gather requirements"),
    "Proposal": ("Send proposal", "Review proposal with sponsor", "Pricing walkthrough"),
    "Negotiation": ("Redline review with legal", "Final pricing call", "Contract signature"),
}

TOUCH_SUBJECTS = {
    "call": ("Call with {first} about {topic}", "Check-in call with {first}", "Follow-up call: {topic}"),
    "email": ("E-mail to {first}: {topic}", "Sent {topic} to {first}", "Re: {topic}"),
    "meeting": ("Meeting with {first} at {company}", "{topic} workshop", "On-site visit: {topic}"),
}
TOPICS = (
    "pricing",
    "requirements",
    "timeline",
    "security questionnaire",
    "references",
    "integration scope",
    "rollout plan",
    "contract terms",
    "success criteria",
    "budget",
)
