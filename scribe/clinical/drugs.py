"""Drug names a clinician says aloud: generics, and brands mapped to their generic.

Curated by hand for common outpatient and hospital prescribing; a lexicon rather than a
statistical recogniser, so every hit is explainable and whatever reads drugs with it (the
extractive engine, grounding, the benches) stays deterministic. Multi-word names ("vitamin d",
"fish oil") are matched before their parts.
"""

from __future__ import annotations

import re
from functools import lru_cache

_GENERICS = """
acetaminophen acyclovir adalimumab albuterol alendronate allopurinol alprazolam amiodarone amitriptyline
amlodipine amoxicillin amoxicillin-clavulanate amphetamine anastrozole apixaban aripiprazole aspirin atenolol
atorvastatin azathioprine azithromycin baclofen beclomethasone benazepril benzonatate benzoyl-peroxide
bisoprolol budesonide bumetanide buprenorphine bupropion buspirone calcitriol canagliflozin candesartan
captopril carbamazepine carbidopa-levodopa carvedilol cefdinir cefalexin cephalexin ceftriaxone celecoxib
cetirizine chlorthalidone cholecalciferol ciprofloxacin citalopram clarithromycin clindamycin clobetasol
clonazepam clonidine clopidogrel colchicine cyclobenzaprine dabigatran dapagliflozin denosumab
desvenlafaxine dexamethasone diazepam diclofenac dicyclomine digoxin diltiazem diphenhydramine divalproex
donepezil doxazosin doxycycline dulaglutide duloxetine empagliflozin enalapril enoxaparin entresto
epinephrine ergocalciferol escitalopram esomeprazole estradiol etanercept ezetimibe famotidine fenofibrate
fentanyl ferrous-sulfate fexofenadine finasteride fluconazole fluoxetine fluticasone folic-acid furosemide
gabapentin glargine glimepiride glipizide glyburide guaifenesin haloperidol heparin hydralazine
hydrochlorothiazide hydrocodone hydrocortisone hydroxychloroquine hydroxyzine ibuprofen indomethacin insulin
ipratropium irbesartan isosorbide ivermectin ketorolac labetalol lamotrigine lansoprazole latanoprost
letrozole levetiracetam levocetirizine levofloxacin levothyroxine lidocaine linagliptin liraglutide
lisinopril lithium loperamide loratadine lorazepam losartan lovastatin meclizine medroxyprogesterone
meloxicam memantine metformin methadone methimazole methocarbamol methotrexate methylphenidate
methylprednisolone metoclopramide metolazone metoprolol metronidazole minocycline mirtazapine montelukast
morphine mupirocin naloxone naltrexone naproxen nebivolol nifedipine nitrofurantoin nitroglycerin
nortriptyline nystatin olanzapine olmesartan omeprazole ondansetron oseltamivir oxybutynin oxycodone
pantoprazole paroxetine penicillin phenazopyridine phentermine phenytoin pioglitazone potassium-chloride
pravastatin prednisolone prednisone pregabalin progesterone promethazine propranolol quetiapine
rabeprazole raloxifene ramipril ranitidine rifampin risperidone rivaroxaban rizatriptan ropinirole
rosuvastatin semaglutide sertraline sildenafil simvastatin sitagliptin sotalol spironolactone sucralfate
sulfamethoxazole-trimethoprim sumatriptan tadalafil tamoxifen tamsulosin terazosin terbinafine
testosterone tiotropium tirzepatide tizanidine topiramate torsemide tramadol trazodone triamcinolone
triamterene telmisartan betamethasone levalbuterol exenatide valacyclovir valsartan vancomycin venlafaxine
verapamil warfarin zolpidem ketoconazole
mesalamine infliximab ustekinumab sacubitril-valsartan ticagrelor prasugrel edoxaban dofetilide
dronedarone flecainide propafenone ranolazine isosorbide-mononitrate hydromorphone cyclosporine
tacrolimus mycophenolate budesonide-formoterol fluticasone-salmeterol mometasone ciclopirox tretinoin
adapalene doxepin lurasidone ziprasidone vilazodone vortioxetine lisdexamfetamine atomoxetine
modafinil oxcarbazepine lacosamide zonisamide primidone pramipexole rasagiline ropinirole benztropine
colestipol cholestyramine niacin icosapent omega-3 alirocumab evolocumab insulin-lispro insulin-aspart
insulin-glargine insulin-detemir metformin-er glucagon bisacodyl docusate senna polyethylene-glycol
lactulose simethicone calcium-carbonate magnesium-oxide sodium-bicarbonate nicotine varenicline
acamprosate disulfiram buprenorphine-naloxone tamsulosin-dutasteride dutasteride mirabegron solifenacin
tolterodine bethanechol phenazopyridine cefuroxime cefpodoxime ceftaroline linezolid daptomycin
nitrofurantoin fosfomycin trimethoprim clotrimazole miconazole permethrin valganciclovir emtricitabine
tenofovir dolutegravir bictegravir hydroxyurea allopurinol febuxostat probenecid anakinra tocilizumab
sulfasalazine leflunomide apremilast dupilumab omalizumab mepolizumab benralizumab cromolyn azelastine
oxymetazoline pseudoephedrine phenylephrine dextromethorphan melatonin magnesium zinc biotin
"""

# Multi-word or spaced forms as said aloud, with the canonical name they stand for.
_PHRASES = {
    "vitamin d": "vitamin D",
    "vitamin d3": "vitamin D3",
    "vitamin b12": "vitamin B12",
    "vitamin b 12": "vitamin B12",
    "vitamin c": "vitamin C",
    "fish oil": "fish oil",
    "folic acid": "folic acid",
    "iron supplement": "iron",
    "benzoyl peroxide": "benzoyl peroxide",
    "ferrous sulfate": "ferrous sulfate",
    "potassium chloride": "potassium chloride",
    "calcium carbonate": "calcium carbonate",
    "magnesium oxide": "magnesium oxide",
    "polyethylene glycol": "polyethylene glycol",
    "isosorbide mononitrate": "isosorbide mononitrate",
    "nitro patch": "nitroglycerin",
    "insulin glargine": "insulin glargine",
    "insulin lispro": "insulin lispro",
    "insulin aspart": "insulin aspart",
    "long acting insulin": "long-acting insulin",
    "long-acting insulin": "long-acting insulin",
    "short acting insulin": "short-acting insulin",
    "baby aspirin": "aspirin",
    "flu shot": "influenza vaccine",
    "tetanus shot": "tetanus vaccine",
    "cortisone shot": "corticosteroid injection",
    "steroid injection": "corticosteroid injection",
    "birth control": "oral contraceptive",
    "tylenol pm": "acetaminophen-diphenhydramine",
    "fluticasone salmeterol": "fluticasone-salmeterol",
    "amoxicillin clavulanate": "amoxicillin-clavulanate",
    "sacubitril valsartan": "sacubitril-valsartan",
    "carbidopa levodopa": "carbidopa-levodopa",
    "omega 3": "omega-3",
    "omega-3": "omega-3",
}

_BRANDS = {
    "tylenol": "acetaminophen",
    "advil": "ibuprofen",
    "motrin": "ibuprofen",
    "aleve": "naproxen",
    "naprosyn": "naproxen",
    "lasix": "furosemide",
    "coumadin": "warfarin",
    "eliquis": "apixaban",
    "xarelto": "rivaroxaban",
    "pradaxa": "dabigatran",
    "plavix": "clopidogrel",
    "brilinta": "ticagrelor",
    "lipitor": "atorvastatin",
    "crestor": "rosuvastatin",
    "zocor": "simvastatin",
    "pravachol": "pravastatin",
    "zetia": "ezetimibe",
    "norvasc": "amlodipine",
    "toprol": "metoprolol",
    "lopressor": "metoprolol",
    "coreg": "carvedilol",
    "zestril": "lisinopril",
    "prinivil": "lisinopril",
    "cozaar": "losartan",
    "diovan": "valsartan",
    "benicar": "olmesartan",
    "aldactone": "spironolactone",
    "microzide": "hydrochlorothiazide",
    "hctz": "hydrochlorothiazide",
    "glucophage": "metformin",
    "jardiance": "empagliflozin",
    "farxiga": "dapagliflozin",
    "invokana": "canagliflozin",
    "januvia": "sitagliptin",
    "tradjenta": "linagliptin",
    "ozempic": "semaglutide",
    "wegovy": "semaglutide",
    "rybelsus": "semaglutide",
    "trulicity": "dulaglutide",
    "victoza": "liraglutide",
    "mounjaro": "tirzepatide",
    "lantus": "insulin glargine",
    "basaglar": "insulin glargine",
    "toujeo": "insulin glargine",
    "levemir": "insulin detemir",
    "humalog": "insulin lispro",
    "novolog": "insulin aspart",
    "synthroid": "levothyroxine",
    "levoxyl": "levothyroxine",
    "unithroid": "levothyroxine",
    "armour thyroid": "thyroid",
    "tapazole": "methimazole",
    "prilosec": "omeprazole",
    "nexium": "esomeprazole",
    "protonix": "pantoprazole",
    "prevacid": "lansoprazole",
    "pepcid": "famotidine",
    "zantac": "ranitidine",
    "carafate": "sucralfate",
    "zofran": "ondansetron",
    "reglan": "metoclopramide",
    "miralax": "polyethylene glycol",
    "colace": "docusate",
    "senokot": "senna",
    "dulcolax": "bisacodyl",
    "imodium": "loperamide",
    "zoloft": "sertraline",
    "prozac": "fluoxetine",
    "lexapro": "escitalopram",
    "celexa": "citalopram",
    "paxil": "paroxetine",
    "effexor": "venlafaxine",
    "cymbalta": "duloxetine",
    "wellbutrin": "bupropion",
    "remeron": "mirtazapine",
    "desyrel": "trazodone",
    "buspar": "buspirone",
    "xanax": "alprazolam",
    "ativan": "lorazepam",
    "klonopin": "clonazepam",
    "valium": "diazepam",
    "ambien": "zolpidem",
    "seroquel": "quetiapine",
    "abilify": "aripiprazole",
    "risperdal": "risperidone",
    "zyprexa": "olanzapine",
    "lamictal": "lamotrigine",
    "keppra": "levetiracetam",
    "depakote": "divalproex",
    "tegretol": "carbamazepine",
    "dilantin": "phenytoin",
    "topamax": "topiramate",
    "neurontin": "gabapentin",
    "lyrica": "pregabalin",
    "flexeril": "cyclobenzaprine",
    "robaxin": "methocarbamol",
    "zanaflex": "tizanidine",
    "ultram": "tramadol",
    "norco": "hydrocodone-acetaminophen",
    "vicodin": "hydrocodone-acetaminophen",
    "percocet": "oxycodone-acetaminophen",
    "oxycontin": "oxycodone",
    "mobic": "meloxicam",
    "celebrex": "celecoxib",
    "voltaren": "diclofenac",
    "toradol": "ketorolac",
    "medrol": "methylprednisolone",
    "deltasone": "prednisone",
    "imitrex": "sumatriptan",
    "maxalt": "rizatriptan",
    "flonase": "fluticasone",
    "nasonex": "mometasone",
    "zyrtec": "cetirizine",
    "claritin": "loratadine",
    "allegra": "fexofenadine",
    "xyzal": "levocetirizine",
    "benadryl": "diphenhydramine",
    "singulair": "montelukast",
    "proair": "albuterol",
    "ventolin": "albuterol",
    "proventil": "albuterol",
    "symbicort": "budesonide-formoterol",
    "advair": "fluticasone-salmeterol",
    "spiriva": "tiotropium",
    "breo": "fluticasone-vilanterol",
    "flovent": "fluticasone",
    "pulmicort": "budesonide",
    "qvar": "beclomethasone",
    "atrovent": "ipratropium",
    "duoneb": "ipratropium-albuterol",
    "augmentin": "amoxicillin-clavulanate",
    "keflex": "cephalexin",
    "zithromax": "azithromycin",
    "z-pack": "azithromycin",
    "zpack": "azithromycin",
    "z-pak": "azithromycin",
    "cipro": "ciprofloxacin",
    "levaquin": "levofloxacin",
    "bactrim": "sulfamethoxazole-trimethoprim",
    "macrobid": "nitrofurantoin",
    "flagyl": "metronidazole",
    "diflucan": "fluconazole",
    "valtrex": "valacyclovir",
    "tamiflu": "oseltamivir",
    "flomax": "tamsulosin",
    "proscar": "finasteride",
    "avodart": "dutasteride",
    "viagra": "sildenafil",
    "cialis": "tadalafil",
    "ditropan": "oxybutynin",
    "myrbetriq": "mirabegron",
    "vesicare": "solifenacin",
    "detrol": "tolterodine",
    "pyridium": "phenazopyridine",
    "zyloprim": "allopurinol",
    "uloric": "febuxostat",
    "colcrys": "colchicine",
    "plaquenil": "hydroxychloroquine",
    "humira": "adalimumab",
    "enbrel": "etanercept",
    "remicade": "infliximab",
    "stelara": "ustekinumab",
    "otezla": "apremilast",
    "dupixent": "dupilumab",
    "xolair": "omalizumab",
    "prolia": "denosumab",
    "fosamax": "alendronate",
    "evista": "raloxifene",
    "aricept": "donepezil",
    "namenda": "memantine",
    "sinemet": "carbidopa-levodopa",
    "requip": "ropinirole",
    "mirapex": "pramipexole",
    "adderall": "amphetamine",
    "ritalin": "methylphenidate",
    "concerta": "methylphenidate",
    "vyvanse": "lisdexamfetamine",
    "strattera": "atomoxetine",
    "suboxone": "buprenorphine-naloxone",
    "narcan": "naloxone",
    "chantix": "varenicline",
    "entresto": "sacubitril-valsartan",
    "lanoxin": "digoxin",
    "cardizem": "diltiazem",
    "calan": "verapamil",
    "multaq": "dronedarone",
    "tikosyn": "dofetilide",
    "pacerone": "amiodarone",
    "imdur": "isosorbide mononitrate",
    "nitrostat": "nitroglycerin",
    "ranexa": "ranolazine",
    "lovenox": "enoxaparin",
    "epipen": "epinephrine",
    "bentyl": "dicyclomine",
    "antivert": "meclizine",
    "phenergan": "promethazine",
    "tessalon": "benzonatate",
    "mucinex": "guaifenesin",
    "sudafed": "pseudoephedrine",
    "lotrimin": "clotrimazole",
    "lamisil": "terbinafine",
    "bactroban": "mupirocin",
    "retin-a": "tretinoin",
    "differin": "adapalene",
    "epiduo": "adapalene-benzoyl peroxide",
    "phexxi": "lactic acid-citric acid-potassium bitartrate",
    "microgestin": "norethindrone-ethinyl estradiol",
    "aldara": "imiquimod",
    "kenalog": "triamcinolone",
    "lidoderm": "lidocaine",
    "xiidra": "lifitegrast",
    "restasis": "cyclosporine",
    "xalatan": "latanoprost",
    "metamucil": "psyllium",
    "pepto": "bismuth subsalicylate",
    "tums": "calcium carbonate",
    "bumex": "bumetanide",
    "demadex": "torsemide",
    "cardura": "doxazosin",
    "hytrin": "terazosin",
    "k-dur": "potassium chloride",
    "klor-con": "potassium chloride",
    "zyrtec-d": "cetirizine-pseudoephedrine",
    "celestone": "betamethasone",
    "depo-medrol": "methylprednisolone",
    "xopenex": "levalbuterol",
    "trelegy": "fluticasone-umeclidinium-vilanterol",
    "anoro": "umeclidinium-vilanterol",
    "humulin": "insulin human",
    "novolin": "insulin human",
    "tresiba": "insulin degludec",
    "bydureon": "exenatide",
    "byetta": "exenatide",
    "actos": "pioglitazone",
    "amaryl": "glimepiride",
    "glucotrol": "glipizide",
    "tenormin": "atenolol",
    "bystolic": "nebivolol",
    "altace": "ramipril",
    "vasotec": "enalapril",
    "lotensin": "benazepril",
    "avapro": "irbesartan",
    "micardis": "telmisartan",
    "atacand": "candesartan",
    "inderal": "propranolol",
    "procardia": "nifedipine",
    "apresoline": "hydralazine",
    "catapres": "clonidine",
    "arava": "leflunomide",
    "azulfidine": "sulfasalazine",
    "trexall": "methotrexate",
    "monistat": "miconazole",
}


# Classes an allergy is often recorded as ("NSAIDs", "Penicillins", "Sulfa drugs"): the class as named (singular,
# lower case) -> canonical members of the lexicon, so a prescribed member is recognised as the recorded allergen.
DRUG_CLASSES: dict[str, frozenset[str]] = {
    "nsaid": frozenset(
        {"ibuprofen", "naproxen", "meloxicam", "diclofenac", "celecoxib", "ketorolac", "indomethacin", "aspirin"}
    ),
    "penicillin": frozenset({"penicillin", "amoxicillin", "amoxicillin-clavulanate"}),
    "cephalosporin": frozenset({"cephalexin", "cefalexin", "cefdinir", "ceftriaxone"}),
    "sulfa": frozenset({"sulfamethoxazole-trimethoprim", "sulfasalazine"}),
    "sulfonamide": frozenset({"sulfamethoxazole-trimethoprim", "sulfasalazine"}),
    "fluoroquinolone": frozenset({"ciprofloxacin", "levofloxacin"}),
    "macrolide": frozenset({"azithromycin", "clarithromycin", "erythromycin"}),
    "tetracycline": frozenset({"tetracycline", "doxycycline", "minocycline"}),
    "statin": frozenset({"atorvastatin", "rosuvastatin", "simvastatin", "pravastatin", "lovastatin"}),
    "ace inhibitor": frozenset({"lisinopril", "enalapril", "ramipril", "benazepril", "captopril"}),
    "opioid": frozenset(
        {
            "morphine",
            "oxycodone",
            "hydrocodone",
            "hydromorphone",
            "fentanyl",
            "methadone",
            "tramadol",
            "codeine",
            "hydrocodone-acetaminophen",
            "oxycodone-acetaminophen",
        }
    ),
    "opiate": frozenset(
        {
            "morphine",
            "codeine",
            "oxycodone",
            "hydrocodone",
            "hydromorphone",
            "hydrocodone-acetaminophen",
            "oxycodone-acetaminophen",
        }
    ),
}


def class_members(name: str) -> frozenset[str]:
    """The canonical drugs of a class named in `name` ("NSAIDs", "penicillin antibiotics"), else empty."""
    low = " ".join(name.lower().replace("-", " ").split())
    found: set[str] = set()
    for label, members in DRUG_CLASSES.items():
        if re.search(rf"\b{label}s?\b", low):
            found |= members
    return frozenset(found)


def drug_lexicon() -> dict[str, str]:
    """Spoken form (lower case, spaces between words) -> canonical drug name."""
    lexicon: dict[str, str] = {}
    for name in _GENERICS.split():
        canonical = (
            name.replace("-", " ")
            if name
            in {
                "benzoyl-peroxide",
                "folic-acid",
                "ferrous-sulfate",
                "potassium-chloride",
                "calcium-carbonate",
                "magnesium-oxide",
                "polyethylene-glycol",
                "isosorbide-mononitrate",
            }
            else name
        )
        lexicon[name] = canonical
        if "-" in name:
            lexicon[name.replace("-", " ")] = canonical
    lexicon.update(_PHRASES)
    lexicon.update(_BRANDS)
    return lexicon


def canonical_drug(name: str) -> str:
    """A drug name (spoken or from a record) as the lexicon's generic, else lower-cased as given."""
    lexicon = drug_lexicon()
    low = " ".join(name.lower().split())
    return lexicon.get(low) or lexicon.get(low.split(" ")[0], low) if low else low


@lru_cache(maxsize=1)
def drug_name_pattern() -> tuple[re.Pattern[str], dict[str, str]]:
    """Lexicon names as one regex, with name -> generic: public as grounding and confidence (scribe.notes) use it."""
    lexicon = drug_lexicon()
    names = sorted(lexicon, key=len, reverse=True)
    alternation = "|".join(re.escape(n).replace(r"\ ", r"[\s-]+") for n in names)
    return re.compile(rf"(?<![\w-])(?:{alternation})(?![\w-])", re.I), {k.lower(): v for k, v in lexicon.items()}
