// RFC 5892 Appendix A, RFC 5893: Unicode properties the PRECIS and IDNA rules need that regexes cannot test.
// JavaScript property escapes cover General_Category and Script but not Bidi_Class, Joining_Type or
// Canonical_Combining_Class, so those three live here as tables from the Unicode Character Database.

/** A Bidi_Class value; the classes no bidi rule accepts (B, S, WS, explicit embeddings) are folded into `X`. */
export type BidiClass = 'L' | 'R' | 'AL' | 'AN' | 'EN' | 'ES' | 'CS' | 'ET' | 'ON' | 'BN' | 'NSM' | 'X';

/** A Joining_Type value (ArabicShaping.txt); unlisted code points are T if Mn, Me or Cf, else U. */
export type JoiningType = 'D' | 'R' | 'L' | 'C' | 'T' | 'U';

// Every range whose Bidi_Class is not L, in code point order and separated by commas, as: the gap since the
// previous range (base 36), one class letter, the length minus one (base 36, absent for 0). Unassigned code
// points carry the UCD defaults (R or AL in the blocks set aside for right-to-left scripts), so letters added
// to those blocks later are still right-to-left here.
const BIDI_RANGES = [
  '0B8,0X4,0Bd,0X4,0O1,0T2,0O4,0S,0C,0S,0C1,0E9,0C,0O5,qO5,qO3,0B5,0X,0Bp,0C,0O,0T3,0O3,1O1,0B,0O1,',
  '0T1,0E1,0O,1O2,0E,1O4,nO,vO,chO1,7Od,2Od,5O8,1Og,0M33,4O1,8O,5O1,1O,32O,3wM6,74O,2O1,0T,0R,0M18,',
  '0R,0M,0R,0M1,0R,0M1,0R,0M,0R1j,0N5,0O1,0A,0T1,0A,0C,0A,0O1,0Ma,0A1b,0Mk,0N9,0T,0N1,0A2,0M,0A2s,',
  '0M6,0N,0O,0M5,0A1,0M1,0O,0M3,0A1,0E9,0Am,0M,0At,0Mq,0A2i,0Ma,0Ae,0R16,0M8,0R1,0O3,0R2,0M,0Rn,',
  '0M3,0R,0M8,0R,0M2,0R,0M4,0R16,0M2,0R3,0A1b,0N1,0A5,0M7,0A15,0Mn,0N,0Mv,1jM,1M,4M7,4M,3M6,aM1,tM,',
  '1mM,4M3,8M,kM1,eT1,7T,2M,2M1,1lM,4M1,4M1,2M2,3M,uM1,3M,bM1,1lM,4M4,1M1,4M,kM1,dT,8M5,1M,1mM,2M,',
  '1M3,8M,7M1,bM1,uM,1pM,cM,11O5,0T,0O,5M,3M,1jM,1M2,5M2,1M3,7M1,bM1,kO6,2M,1mM,fM1,kM1,sM1,1lM1,',
  '4M3,8M,kM1,tM,20M,7M2,1M,2iM,2M6,4T,7M7,2qM,2M8,bM5,22M1,rM,1M,1M,0O3,1fMd,1M4,1M1,5Ma,1Mz,9M,',
  '2uM3,1M5,1M1,2M1,pM1,4M2,gM3,dM,2M1,6M,fM,jjM2,1cO9,2uO,hrX,qO1,39M2,tM1,uM1,uM1,1sM1,1M6,8M,',
  '2Ma,7T,1M,iO9,6Oa,0M2,0B,0M,39M1,yM,3aM2,4M1,9M,6M2,4O,3O1,48Ox,nM1,2M,1mM,1M6,1M,1M,2M7,6M9,2M,',
  '1cMu,1dM3,1cM,1M4,1M,5M,14M8,cM1,wM3,2M1,1M2,1kM,1M1,3M,1M2,1mM7,2M1,48M2,1Mc,1M6,4M,6M,3M1,',
  '5iM1r,cdO,1O2,bO2,dO2,dO2,dO1,1Xa,0B2,1R,0On,0X6,0C,0T4,0Oe,0C,0Op,0X,0B4,1X3,0B5,0E,3E5,0S1,',
  '0O2,1E9,0S1,0O2,hT1b,0Mw,fO1,1O3,1O1,aO,1O2,5O5,1O,1O,1O,4T,bO1,4O4,5O3,2Of,15O2,4O3l,0S,0T,',
  '0O81,1xOp,1O40,pOa,lO13,0Ej,26Och,1O9e,74Ohf,2Ov,1O2w,6dO5,4M2,7O6,3jM,2oMv,0O2l,yOp,1O2g,cO5x,',
  'qOb,4X,0O3,3Oo,9M3,2O,5O1,5O2,2hM1,0O1,3O,2iO,5gOz,1lO1,1dOf,sO2,1eOe,cO3,4nO3,2rO1,vO,534O1r,',
  'h3kO1i,92O2,2nM3,0O,0M9,0O1,uM1,28M1,eOx,2uO,3dM,3M,4M,pM1,1O3,0M,bT1,1mO3,24M1,qMh,dM,12M7,pMa,',
  '1aM2,1cM,2M3,2M1,13M,1vM5,2M1,2M1,cM,8M,1bM,1fM,1M2,2M1,5M1,1M,16M1,8M,37O1,3dM,2M,4M,fn3R,0M,',
  '0R9,0S,0R11,0Adp,0Oh,0A3i,0O,wAc,0O2,0Mf,0O9,6Mf,0Ov,0C,0O,0C,1O,0C,0O8,0T,0O1,0S1,0O2,1O,0T1,',
  '0O,4A3y,0B,1O1,0T2,0O4,0S,0C,0S,0C1,0E9,0C,0O5,qO5,qOa,3eT1,0O2,0T1,1O6,aO4,77O,1qO24,3Oc,3O,',
  '2kM,6aM,0Eq,3eM4,w5R7y,0O,0R68,0M2,0R,0M1,0R4,0M3,0R13,0M2,0R3,0M,0R4k,0M1,0R29,0O6,0Rcf,0Az,',
  '0M3,0A7,0N9,0A5,0R7z,0Nu,0R17,0M1,0Ri,0A1r,0R1b,0Al,0Ma,0Au,0Rh,0M3,0R3d,1M,1iMe,bOj,aM,2M1,aM2,',
  '1dM3,2M1,7M,1pM2,10M4,1M7,1qM,cM1,1gM8,aM3,2M,2nM2,2M,1M1,6M,4gM,3M7,lM1,1lM1,3M,11M6,3M4,5fM7,',
  '2M2,1M,nM,2cM5,1M,4M1,1M1,6mM3,6M1,1M1,rM1,2dM7,2M,1M1,vOc,1qM,1M,2M5,1M,2tM2,2M3,1M4,77M8,1M1,',
  '74M1,1M,4M,40M3,2M1,4M,wM5,2M1,14M5,2M3,8M,9M5,2M2,1aMc,1M1,baM6,1M5,2cMl,2M6,1M1,1M1,3eM5,3M,',
  '1M1,1M6,1M,20M1,3M,1M,9nM1,68O7,0T3,0Og,etaM4,1nM6,t4M,1rM3,27O,1M,f5kM1,1B3,3mkM19,2Mm,f4M2,',
  '9B7,0M7,2M6,uM3,1nO1,lO1t,0M2,0O,56O2e,p0O,1lO,1lO,1lO,1lO,aE1d,e8M1i,4M1d,8M,eM,mM4,1Me,11sM6,',
  '1Mg,2M6,1M1,1M4,79M6,afM,1pM3,fT,zkR5r,0M6,0R30,0M6,0Rmc,0A27,0R1r,0A27,0R4v,0A6n,0O1,0Ad,0R73,',
  '0O17,4O2r,cOe,2Oe,1Oe,1O10,aEa,0O4,vO,1mO5,1pO,4yO5,4aOrb,5Of,3Oc,3O37,cO2g,7Ob,4O,fOb,4O1j,8O9,',
  '6O13,8Ot,2O1,26O9f,cOd,2O4,3O4,3O6,9Os,3Oa,5O5,aO9,6O7,8O6,9O42,1O1i,11E9,gvlzB,uB2n,3kM6n',
].join('');

const BIDI_LETTERS: Record<string, BidiClass> = {
  R: 'R',
  A: 'AL',
  N: 'AN',
  E: 'EN',
  S: 'ES',
  C: 'CS',
  T: 'ET',
  O: 'ON',
  B: 'BN',
  M: 'NSM',
  X: 'X',
};

const bidiStarts: number[] = [];
const bidiEnds: number[] = [];
const bidiClasses: BidiClass[] = [];
{
  let next = 0;
  for (const [, gap = '', letter = '', extra = ''] of BIDI_RANGES.matchAll(
    /([0-9a-z]+)([A-Z])([0-9a-z]*),?/g,
  )) {
    const start = next + parseInt(gap, 36);
    const end = start + (extra === '' ? 0 : parseInt(extra, 36));
    bidiStarts.push(start);
    bidiEnds.push(end);
    bidiClasses.push(BIDI_LETTERS[letter] ?? 'X');
    next = end + 1;
  }
}

/** The Bidi_Class of `cp`. */
export function bidiClass(cp: number): BidiClass {
  let lo = 0;
  let hi = bidiStarts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (cp < (bidiStarts[mid] ?? 0)) hi = mid - 1;
    else if (cp > (bidiEnds[mid] ?? 0)) lo = mid + 1;
    else return bidiClasses[mid] ?? 'L';
  }
  return 'L';
}

// Canonical_Combining_Class=Virama (9): a zero-width joiner or non-joiner may follow (RFC 5892 A.1, A.2).
const VIRAMAS = new Set(
  (
    '094D 09CD 0A4D 0ACD 0B4D 0BCD 0C4D 0CCD 0D3B 0D3C 0D4D 0DCA 0E3A 0EBA 0F84 1039 103A 1714 1715 1734 17D2 ' +
    '1A60 1B44 1BAA 1BAB 1BF2 1BF3 2D7F A806 A82C A8C4 A953 A9C0 AAF6 ABED 10A3F 11046 11070 1107F 110B9 11133 ' +
    '11134 111C0 11235 112EA 1134D 11442 114C2 115BF 1163F 116B6 1172B 11839 1193D 1193E 119E0 11A34 11A47 ' +
    '11A99 11C3F 11D44 11D45 11D97'
  )
    .split(' ')
    .map((hex) => parseInt(hex, 16)),
);

/** Whether `cp` has Canonical_Combining_Class Virama. */
export function isVirama(cp: number): boolean {
  return VIRAMAS.has(cp);
}

// The explicit entries of ArabicShaping.txt that matter for joining: the cursive letters, plus the marks and
// format characters listed with a type other than the T their category would give them.
const JOINING_LISTED: Record<JoiningType, string> = {
  D:
    '0620 0626 0628 062A-062E 0633-063F 0641-0647 0649-064A 066E-066F 0678-0687 069A-06BF 06C1-06C2 06CC 06CE ' +
    '06D0-06D1 06FA-06FC 06FF 0712-0714 071A-071D 071F-0727 0729 072B 072D-072E 074E-0758 075C-076A 076D-0770 ' +
    '0772 0775-0777 077A-077F 07CA-07EA 0841-0845 0848 084A-0853 0855 0860 0862-0865 0868 08A0-08A9 08AF-08B0 ' +
    '08B3-08B4 08B6-08B8 08BA-08BD 08C5-08C6 1807 1820-1878 1887-18A8 18AA A840-A871 10AC0-10AC4 10AD3-10AD6 ' +
    '10AD8-10ADC 10ADE-10AE0 10AEB-10AEE 10B80 10B82 10B86-10B88 10B8A-10B8B 10B8D 10B90 10BAD-10BAE ' +
    '10D01-10D21 10D23 10F30-10F32 10F34-10F44 10F51-10F53 1E900-1E943',
  R:
    '0622-0625 0627 0629 062F-0632 0648 0671-0673 0675-0677 0688-0699 06C0 06C3-06CB 06CD 06CF 06D2-06D3 06D5 ' +
    '06EE-06EF 0710 0715-0719 071E 0728 072A 072C 072F 074D 0759-075B 076B-076C 0771 0773-0774 0778-0779 0840 ' +
    '0846-0847 0849 0854 0867 0869-086A 08AA-08AC 08AE 08B1-08B2 08B9 10AC5 10AC7 10AC9-10ACA 10ACE-10AD2 ' +
    '10ADD 10AE1 10AE4 10AEF 10B81 10B83-10B85 10B89 10B8C 10B8E-10B8F 10B91 10BA9-10BAC 10D22 10F33 10F54',
  L: 'A872 10ACD 10AD7 10D00',
  C: '0640 07FA 180A 200D',
  T: '070F 1885-1886 1E94B',
  U: '0600-0605 06DD 08E2 110BD 110CD 180E 200C 2066-2069',
};

const joiningListed = new Map<number, JoiningType>();
for (const [type, ranges] of Object.entries(JOINING_LISTED) as [JoiningType, string][]) {
  for (const range of ranges.split(' ')) {
    const [from = '', to = from] = range.split('-');
    for (let cp = parseInt(from, 16); cp <= parseInt(to, 16); cp++) joiningListed.set(cp, type);
  }
}

const TRANSPARENT_BY_CATEGORY = /^[\p{Mn}\p{Me}\p{Cf}]$/u;

/** The Joining_Type of `cp`. */
export function joiningType(cp: number): JoiningType {
  const listed = joiningListed.get(cp);
  if (listed !== undefined) return listed;
  return TRANSPARENT_BY_CATEGORY.test(String.fromCodePoint(cp)) ? 'T' : 'U';
}
