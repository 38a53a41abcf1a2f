"""Clinical vocabularies: symptoms by review-of-systems group, and problems with ICD-10-CM codes.

Hand-curated and small on purpose: a term here is one a clinician says aloud, and every
code was checked against the ICD-10-CM tabular list (FY2026) when the table was written.
"""

from __future__ import annotations

# Review-of-systems group -> symptom phrases (singular and common plurals; longest match wins).
ROS_SYMPTOMS: dict[str, tuple[str, ...]] = {
    "Constitutional": ("fever", "fevers", "chills", "night sweats", "weight loss", "weight gain", "fatigue",
                       "tiredness", "malaise", "loss of appetite", "decreased appetite", "body aches"),
    "Eyes": ("blurry vision", "blurred vision", "vision changes", "double vision", "eye pain", "vision loss"),
    "Ears, Nose, Mouth and Throat": ("sore throat", "nasal congestion", "congestion", "runny nose", "ear pain",
                                     "sinus pressure", "sinus pain", "hearing loss", "rhinorrhea", "sneezing",
                                     "postnasal drip", "ear ringing", "tinnitus", "hoarseness"),
    "Cardiovascular": ("chest pain", "chest pains", "chest tightness", "chest pressure", "palpitations",
                       "leg swelling", "swelling in your legs", "swelling in her legs", "swelling in his legs",
                       "swelling in the legs", "lower extremity edema", "edema", "dyspnea on exertion",
                       "orthopnea", "racing heart", "heart racing"),
    "Respiratory": ("shortness of breath", "short of breath", "cough", "coughing", "wheezing", "sputum",
                    "difficulty breathing", "trouble breathing", "dyspnea", "hemoptysis", "coughing up blood"),
    "Gastrointestinal": ("nausea", "vomiting", "diarrhea", "constipation", "abdominal pain", "belly pain",
                         "stomach pain", "stomach ache", "heartburn", "reflux", "blood in your stool",
                         "blood in the stool", "blood in stool", "black stools", "bloody stools", "bloating",
                         "dysphagia", "difficulty swallowing", "trouble swallowing", "rectal bleeding"),
    "Genitourinary": ("dysuria", "burning with urination", "pain with urination", "painful urination",
                      "urinary frequency", "frequent urination", "blood in your urine", "blood in the urine",
                      "hematuria", "urinary urgency", "incontinence", "weak urinary stream", "weak stream",
                      "urinary retention", "flank pain", "nocturia"),
    "Musculoskeletal": ("joint pain", "joint swelling", "back pain", "muscle aches", "myalgias", "muscle pain",
                        "neck pain", "knee pain", "shoulder pain", "hip pain", "wrist pain", "ankle pain",
                        "elbow pain", "foot pain", "hand pain", "stiffness", "muscle weakness", "muscle cramps"),
    "Integumentary": ("rash", "rashes", "itching", "itchiness", "skin lesions", "bruising", "hives", "skin changes"),
    "Neurological": ("headache", "headaches", "dizziness", "dizzy", "lightheadedness", "lightheaded",
                     "numbness", "tingling", "weakness", "syncope", "passing out", "fainting", "seizure",
                     "seizures", "tremor", "tremors", "loss of consciousness", "memory loss", "vertigo",
                     "confusion", "slurred speech", "migraines"),
    "Psychiatric": ("depression", "anxiety", "suicidal ideation", "suicidal thoughts", "thoughts of harming yourself",
                    "trouble sleeping", "difficulty sleeping", "insomnia", "low mood", "panic attacks"),
    "Endocrine": ("polyuria", "polydipsia", "excessive thirst", "increased thirst", "heat intolerance",
                  "cold intolerance", "hot flashes"),
    "Hematologic": ("easy bruising", "bleeding", "swollen glands", "lymph node swelling"),
}

# Problem phrase as said aloud -> (display name, ICD-10-CM code or "" when no single code fits).
PROBLEMS: dict[str, tuple[str, str]] = {
    "hypertension": ("Hypertension", "I10"), "high blood pressure": ("Hypertension", "I10"),
    "essential hypertension": ("Essential hypertension", "I10"), "hyperlipidemia": ("Hyperlipidemia", "E78.5"),
    "high cholesterol": ("Hypercholesterolemia", "E78.00"),
    "hypercholesterolemia": ("Hypercholesterolemia", "E78.00"), "dyslipidemia": ("Dyslipidemia", "E78.5"),
    "type 2 diabetes": ("Type 2 diabetes mellitus", "E11.9"),
    "type ii diabetes": ("Type 2 diabetes mellitus", "E11.9"),
    "type two diabetes": ("Type 2 diabetes mellitus", "E11.9"),
    "type 1 diabetes": ("Type 1 diabetes mellitus", "E10.9"),
    "type one diabetes": ("Type 1 diabetes mellitus", "E10.9"), "diabetes": ("Diabetes mellitus", ""),
    "prediabetes": ("Prediabetes", "R73.03"), "pre-diabetes": ("Prediabetes", "R73.03"),
    "hypothyroidism": ("Hypothyroidism", "E03.9"), "hyperthyroidism": ("Hyperthyroidism", "E05.90"),
    "congestive heart failure": ("Congestive heart failure", "I50.9"), "heart failure": ("Heart failure", "I50.9"),
    "chf": ("Congestive heart failure", "I50.9"), "atrial fibrillation": ("Atrial fibrillation", "I48.91"),
    "afib": ("Atrial fibrillation", "I48.91"), "a-fib": ("Atrial fibrillation", "I48.91"),
    "coronary artery disease": ("Coronary artery disease", "I25.10"), "cad": ("Coronary artery disease", "I25.10"),
    "angina": ("Angina pectoris", "I20.9"), "heart attack": ("Myocardial infarction", "I21.9"),
    "myocardial infarction": ("Myocardial infarction", "I21.9"), "cardiomyopathy": ("Cardiomyopathy", "I42.9"),
    "mitral regurgitation": ("Mitral regurgitation", "I34.0"), "aortic stenosis": ("Aortic stenosis", "I35.0"),
    "heart murmur": ("Heart murmur", "R01.1"), "deep vein thrombosis": ("Deep vein thrombosis", "I82.409"),
    "dvt": ("Deep vein thrombosis", "I82.409"), "pulmonary embolism": ("Pulmonary embolism", "I26.99"),
    "peripheral artery disease": ("Peripheral artery disease", "I73.9"), "stroke": ("Stroke", "I63.9"),
    "asthma": ("Asthma", "J45.909"), "copd": ("Chronic obstructive pulmonary disease", "J44.9"),
    "chronic obstructive pulmonary disease": ("Chronic obstructive pulmonary disease", "J44.9"),
    "pneumonia": ("Pneumonia", "J18.9"), "bronchitis": ("Bronchitis", "J40"), "sinusitis": ("Sinusitis", "J32.9"),
    "sinus infection": ("Acute sinusitis", "J01.90"),
    "upper respiratory infection": ("Upper respiratory infection", "J06.9"), "covid": ("COVID-19", "U07.1"),
    "covid-19": ("COVID-19", "U07.1"), "influenza": ("Influenza", "J11.1"),
    "strep throat": ("Streptococcal pharyngitis", "J02.0"), "allergic rhinitis": ("Allergic rhinitis", "J30.9"),
    "seasonal allergies": ("Seasonal allergic rhinitis", "J30.2"), "otitis media": ("Otitis media", "H66.90"),
    "ear infection": ("Otitis media", "H66.90"), "obstructive sleep apnea": ("Obstructive sleep apnea", "G47.33"),
    "sleep apnea": ("Sleep apnea", "G47.30"), "gerd": ("Gastroesophageal reflux disease", "K21.9"),
    "acid reflux": ("Gastroesophageal reflux disease", "K21.9"),
    "gastroesophageal reflux disease": ("Gastroesophageal reflux disease", "K21.9"),
    "gastritis": ("Gastritis", "K29.70"), "peptic ulcer": ("Peptic ulcer", "K27.9"),
    "irritable bowel syndrome": ("Irritable bowel syndrome", "K58.9"), "ibs": ("Irritable bowel syndrome", "K58.9"),
    "crohn's disease": ("Crohn's disease", "K50.90"), "ulcerative colitis": ("Ulcerative colitis", "K51.90"),
    "diverticulitis": ("Diverticulitis", "K57.92"), "gallstones": ("Cholelithiasis", "K80.20"),
    "cholecystitis": ("Cholecystitis", "K81.9"), "pancreatitis": ("Acute pancreatitis", "K85.90"),
    "appendicitis": ("Appendicitis", "K37"), "fatty liver": ("Fatty liver", "K76.0"),
    "cirrhosis": ("Cirrhosis of liver", "K74.60"), "hepatitis c": ("Chronic hepatitis C", "B18.2"),
    "hemorrhoids": ("Hemorrhoids", "K64.9"), "inguinal hernia": ("Inguinal hernia", "K40.90"),
    "chronic kidney disease": ("Chronic kidney disease", "N18.9"), "ckd": ("Chronic kidney disease", "N18.9"),
    "kidney stone": ("Kidney stone", "N20.0"), "kidney stones": ("Kidney stones", "N20.0"),
    "nephrolithiasis": ("Nephrolithiasis", "N20.0"), "urinary tract infection": ("Urinary tract infection", "N39.0"),
    "uti": ("Urinary tract infection", "N39.0"), "pyelonephritis": ("Pyelonephritis", "N10"),
    "benign prostatic hyperplasia": ("Benign prostatic hyperplasia", "N40.0"),
    "bph": ("Benign prostatic hyperplasia", "N40.0"), "enlarged prostate": ("Benign prostatic hyperplasia", "N40.0"),
    "erectile dysfunction": ("Erectile dysfunction", "N52.9"), "overactive bladder": ("Overactive bladder", "N32.81"),
    "urinary incontinence": ("Urinary incontinence", "R32"), "depression": ("Depression", "F32.A"),
    "major depressive disorder": ("Major depressive disorder", "F32.9"), "anxiety": ("Anxiety", "F41.9"),
    "generalized anxiety disorder": ("Generalized anxiety disorder", "F41.1"),
    "bipolar disorder": ("Bipolar disorder", "F31.9"), "adhd": ("Attention-deficit hyperactivity disorder", "F90.9"),
    "ptsd": ("Post-traumatic stress disorder", "F43.10"), "insomnia": ("Insomnia", "G47.00"),
    "migraine": ("Migraine", "G43.909"), "migraines": ("Migraine", "G43.909"), "epilepsy": ("Epilepsy", "G40.909"),
    "dementia": ("Dementia", "F03.90"), "parkinson's disease": ("Parkinson's disease", "G20.A1"),
    "multiple sclerosis": ("Multiple sclerosis", "G35.D"),
    "peripheral neuropathy": ("Peripheral neuropathy", "G62.9"), "neuropathy": ("Neuropathy", "G62.9"),
    "carpal tunnel syndrome": ("Carpal tunnel syndrome", "G56.00"),
    "bilateral carpal tunnel syndrome": ("Bilateral carpal tunnel syndrome", "G56.03"),
    "osteoarthritis": ("Osteoarthritis", "M19.90"), "arthritis": ("Arthritis", "M19.90"),
    "rheumatoid arthritis": ("Rheumatoid arthritis", "M06.9"), "gout": ("Gout", "M10.9"),
    "osteoporosis": ("Osteoporosis", "M81.0"), "osteopenia": ("Osteopenia", "M85.80"),
    "low back pain": ("Low back pain", "M54.50"), "lumbar radiculopathy": ("Lumbar radiculopathy", "M54.16"),
    "cervical radiculopathy": ("Cervical radiculopathy", "M54.12"), "sciatica": ("Sciatica", "M54.30"),
    "lumbar strain": ("Lumbar strain", "S39.012A"), "fibromyalgia": ("Fibromyalgia", "M79.7"),
    "plantar fasciitis": ("Plantar fasciitis", "M72.2"), "rotator cuff tear": ("Rotator cuff tear", "M75.100"),
    "spinal stenosis": ("Spinal stenosis", "M48.00"), "scoliosis": ("Scoliosis", "M41.9"),
    "tendonitis": ("Tendinitis", "M77.9"), "bursitis": ("Bursitis", "M71.9"),
    "ankle sprain": ("Ankle sprain", "S93.409A"), "concussion": ("Concussion", "S06.0X0A"),
    "anemia": ("Anemia", "D64.9"), "iron deficiency anemia": ("Iron deficiency anemia", "D50.9"),
    "vitamin d deficiency": ("Vitamin D deficiency", "E55.9"), "b12 deficiency": ("Vitamin B12 deficiency", "E53.8"),
    "obesity": ("Obesity", "E66.9"), "morbid obesity": ("Morbid obesity", "E66.01"), "eczema": ("Eczema", "L30.9"),
    "atopic dermatitis": ("Atopic dermatitis", "L20.9"), "psoriasis": ("Psoriasis", "L40.9"),
    "acne": ("Acne vulgaris", "L70.0"), "acne vulgaris": ("Acne vulgaris", "L70.0"), "rosacea": ("Rosacea", "L71.9"),
    "cellulitis": ("Cellulitis", "L03.90"), "shingles": ("Herpes zoster", "B02.9"),
    "hirsutism": ("Hirsutism", "L68.0"), "abnormal liver enzymes": ("Abnormal liver enzymes", "R74.01"),
    "elevated liver enzymes": ("Elevated liver enzymes", "R74.01"),
    "abnormal weight gain": ("Abnormal weight gain", "R63.5"), "lupus": ("Systemic lupus erythematosus", "M32.9"),
    "cushing's syndrome": ("Cushing's syndrome", "E24.9"), "glaucoma": ("Glaucoma", "H40.9"),
    "cataract": ("Cataract", "H26.9"), "conjunctivitis": ("Conjunctivitis", "H10.9"),
    "tinnitus": ("Tinnitus", "H93.19"), "hyperkalemia": ("Hyperkalemia", "E87.5"),
    "hypokalemia": ("Hypokalemia", "E87.6"), "hyponatremia": ("Hyponatremia", "E87.1"),
    "dehydration": ("Dehydration", "E86.0"), "hypoglycemia": ("Hypoglycemia", "E16.2"),
    "tobacco use": ("Tobacco use", "Z72.0"), "alcohol use disorder": ("Alcohol use disorder", "F10.20"),
    "opioid use disorder": ("Opioid use disorder", "F11.20"),
    "polycystic ovary syndrome": ("Polycystic ovary syndrome", "E28.2"),
    "pcos": ("Polycystic ovary syndrome", "E28.2"), "endometriosis": ("Endometriosis", "N80.9"),
    "thyroid nodule": ("Thyroid nodule", "E04.1"), "lyme disease": ("Lyme disease", "A69.20"),
    "hiv": ("HIV disease", "B20"), "sepsis": ("Sepsis", "A41.9"), "syncope": ("Syncope", "R55"),
    "vertigo": ("Vertigo", "R42"), "chest pain": ("Chest pain", "R07.9"), "palpitations": ("Palpitations", "R00.2"),
    "headache": ("Headache", "R51.9"), "fatigue": ("Fatigue", "R53.83"), "constipation": ("Constipation", "K59.00"),
    "hematuria": ("Hematuria", "R31.9"), "prostate cancer": ("Prostate cancer", "C61"),
    "breast cancer": ("Breast cancer", "C50.919"), "lung cancer": ("Lung cancer", "C34.90"),
    "colon cancer": ("Colon cancer", "C18.9"), "melanoma": ("Melanoma", "C43.9"),
    "meniscus tear": ("Meniscus tear", "S83.209A"), "acl tear": ("ACL tear", "S83.519A"),
    "trigger finger": ("Trigger finger", "M65.30"), "renal cell carcinoma": ("Renal cell carcinoma", "C64.9"),
    "kidney cancer": ("Renal cell carcinoma", "C64.9"), "hypertriglyceridemia": ("Hypertriglyceridemia", "E78.1"),
    "annual exam": ("Annual exam", ""), "annual physical": ("Annual exam", ""),
    "nonalcoholic fatty liver disease": ("Nonalcoholic fatty liver disease", "K76.0"),
}

# Words that make a spoken sentence worth a place in the history: anatomy, symptoms, care, time course.
CLINICAL_WORDS = frozenset("""
head neck back chest arm arms leg legs knee knees hip hips shoulder shoulders wrist wrists hand hands finger fingers
thumb foot feet ankle ankles elbow elbows stomach abdomen belly heart lung lungs kidney kidneys liver skin eye eyes
ear ears throat nose sinus sinuses joint joints muscle muscles bone bones spine toe toes groin pelvis bladder bowel
bowels colon breast breasts thyroid brain teeth tooth mouth jaw face calf thigh buttock rib ribs side
pain pains painful hurt hurts hurting sore soreness ache aches aching achy swelling swollen stiff stiffness numb
numbness tingling weak weakness tired fatigue dizzy bleeding blood bruise bruising rash itch itchy cough coughing
fever chills nausea vomiting diarrhea constipation headache headaches migraine sleep sleeping insomnia anxious
anxiety depressed depression stress stressed mood appetite weight gain loss breath breathing wheezing
medication medications medicine medicines pill pills dose doses tablet tablets inhaler insulin prescription
prescribed refill pharmacy side effects
doctor hospital er emergency urgent surgery surgeon procedure injection shot therapy physical therapist
test tests x-ray mri scan labs lab blood work sugar sugars glucose pressure cholesterol a1c
diet eating eat exercise exercising walking running gym smoke smoking cigarettes alcohol drink drinking beer
beers wine injury injured fell fall fallen accident twisted
worse worsening better improved improving started starting began since ago week weeks month months year
years day days night nights morning mornings daily times episode episodes constant intermittent sharp dull
burning throbbing stabbing radiating radiates severity scale 10 swelling
diagnosed history family mother father brother sister
""".split())
