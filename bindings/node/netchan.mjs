// ESM entry point: the same objects as the CommonJS entry (netchan.js).
import netchan from './netchan.js'

export const { Endpoint, Subscription, Service, Request, Message, codes, pack, unpack, version } = netchan
export default netchan
